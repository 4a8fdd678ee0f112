// Starts Redoc on /redoc. Redoc writes its styles into <style> elements, which the page's
// policy lets in only with the nonce it was sent: this script's own, handed to Redoc.
"use strict";

(() => {
  const nonce = document.currentScript.nonce;
  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("redoc");
    Redoc.init(root.dataset.openapiUrl, { nonce }, root);
  });
})();
