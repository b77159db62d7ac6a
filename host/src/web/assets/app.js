// hrsync admin pages: confirmation dialogs and run progress.
// Plain, dependency-free script served as-is (no build step). Pages work
// without it except for opening dialogs and live progress.
"use strict";

// A button with data-dialog="ID" opens <dialog id="ID">; its other data-*
// values fill the dialog's [data-fill] slots (inputs get a value, other
// elements text), so one dialog serves every row of a table.
document.addEventListener("click", (event) => {
  const opener = event.target.closest("[data-dialog]");
  if (opener) {
    const dialog = document.getElementById(opener.dataset.dialog);
    if (!dialog) return;
    for (const slot of dialog.querySelectorAll("[data-fill]")) {
      const value = opener.dataset[slot.dataset.fill];
      if (value === undefined) continue;
      if (slot.tagName === "INPUT") slot.value = value;
      else slot.textContent = value;
    }
    event.preventDefault();
    dialog.showModal();
    return;
  }
  const closer = event.target.closest("[data-close]");
  if (closer) {
    event.preventDefault();
    closer.closest("dialog").close();
  }
});

// No double submissions: a form's buttons are disabled once it is sent.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.method.toLowerCase() !== "post") return;
  setTimeout(() => form.querySelectorAll("button[type=submit]").forEach((b) => (b.disabled = true)), 0);
});

// [data-poll-run=N] shows the fetch progress of run N and reloads the page
// when the run has ended.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function follow(element) {
  const run = element.dataset.pollRun;
  const text = element.querySelector("[data-progress]");
  const bar = element.querySelector("progress");
  for (;;) {
    await sleep(600);
    let body;
    try {
      const response = await fetch(`/api/v1/runs/${run}`, { credentials: "same-origin" });
      if (!response.ok) continue;
      body = await response.json();
    } catch {
      continue;
    }
    const state = body.run.state;
    if (state !== "running" && state !== "queued") {
      location.reload();
      return;
    }
    const p = body.progress;
    if (p && p.records > 0) {
      text.textContent = `Fetched ${p.records} people (${p.pages} pages)…`;
      if (p.total) {
        bar.max = p.total;
        bar.value = p.records;
      }
    }
  }
}

document.querySelectorAll("[data-poll-run]").forEach(follow);

// <input type=file data-fills=ID> reads the picked file into <textarea id=ID>,
// so an upload is a plain form post the page can check line by line.
document.addEventListener("change", async (event) => {
  const input = event.target.closest("input[type=file][data-fills]");
  if (!input || !input.files.length) return;
  document.getElementById(input.dataset.fills).value = await input.files[0].text();
});

// [data-pick-all=FORM] ticks every checkbox of FORM on the page; the element
// [data-picked-count=FORM] says how many are ticked.
const pickBoxes = (form) => document.querySelectorAll(`input[type=checkbox][name=user][form="${form}"]`);
function countPicked(form) {
  const out = document.querySelector(`[data-picked-count="${form}"]`);
  if (!out) return;
  const n = [...pickBoxes(form)].filter((box) => box.checked).length;
  out.textContent = n === 0 ? "Tick people to email them." : n === 1 ? "1 person picked" : `${n} people picked`;
}
document.addEventListener("change", (event) => {
  const all = event.target.closest("[data-pick-all]");
  if (all) pickBoxes(all.dataset.pickAll).forEach((box) => (box.checked = all.checked));
  const form = all ? all.dataset.pickAll : event.target.getAttribute("form");
  if (form) countPicked(form);
});

// [data-focus] answers the form just posted (a failed test, why nothing was
// saved): bring it into view next to the button that asked.
const answer = document.querySelector("[data-focus]");
if (answer) {
  answer.scrollIntoView({ block: "center" });
  answer.focus({ preventScroll: true });
}
