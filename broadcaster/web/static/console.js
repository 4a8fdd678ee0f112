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
    const answer = await fetch(form.dataset.preview, { method: "POST", body: data, credentials: "same-origin" });
    if (ticket !== asked) return;  // a newer request is on its way
    const html = await answer.text();
    pane.replaceChildren(body);
    pane.insertAdjacentHTML("beforeend", html);
  });
  form.addEventListener("input", refresh);
  form.addEventListener("change", refresh);
}

function pollProgress(box) {
  const tick = async () => {
    const answer = await fetch(box.dataset.poll, { credentials: "same-origin" });
    if (!answer.ok) return;
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
