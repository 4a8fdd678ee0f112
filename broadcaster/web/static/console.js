// Optional comfort: every page works without this script. It refreshes the compose
// page's preview while the operator types, and an alert's progress while it goes out.
"use strict";

function debounce(wait, action) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(action, wait); };
}

function livePreview(form) {
  const pane = document.getElementById("preview");
  if (!pane) return;
  const body = pane.querySelector("h2");
  let asked = 0;
  const refresh = debounce(400, async () => {
    const ticket = ++asked;
    const data = new FormData(form);
    data.delete("do");
    let answer;
    try {
      answer = await fetch(form.dataset.preview, { method: "POST", body: data, credentials: "same-origin" });
    } catch (failure) {
      return;  // offline for a moment: the button still previews
    }
    if (ticket !== asked) return;  // a newer request is on its way
    // 422 is a preview of an incomplete form; anything else (signed out, a stale form)
    // is no preview: the page's own button says what it is.
    if (answer.redirected || (answer.status !== 200 && answer.status !== 422)) return;
    const html = await answer.text();
    pane.replaceChildren(body);
    pane.insertAdjacentHTML("beforeend", html);
  });
  form.addEventListener("input", refresh);
  form.addEventListener("change", refresh);
}

function pollProgress(box) {
  const tick = async () => {
    let answer;
    try {
      answer = await fetch(box.dataset.poll, { credentials: "same-origin" });
    } catch (failure) {
      setTimeout(tick, 5000);  // the network came and went: try again
      return;
    }
    if (answer.redirected || !answer.ok) {
      window.location.reload();  // signed out or gone: the page itself says so
      return;
    }
    const heading = box.querySelector("h2");
    box.replaceChildren(heading);
    box.insertAdjacentHTML("beforeend", await answer.text());
    const status = box.querySelector("[data-status]");
    const still = status && ["approved", "dispatching"].includes(status.dataset.status);
    if (still) setTimeout(tick, 2000);
    else window.location.reload();  // the actions and the history changed too
  };
  setTimeout(tick, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.documentElement.classList.add("js");
  const form = document.querySelector("form[data-preview]");
  if (form) livePreview(form);
  const box = document.querySelector("[data-poll]");
  if (box) pollProgress(box);
});
