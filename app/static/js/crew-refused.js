// Actions the server refused when they were replayed (say a supervisor closed the ticket meanwhile):
// listed on every crew page with what the crew wrote, so a note for the caller is never lost
// silently, until the crew dismisses each one.
import { dismissRefused, refused, ticketOf } from "./crew-queue.js";

export const ACTION_TEXT = { accept: "Accept", start: "Start", close: "Close", reassign: "Reassign", note: "Note",
                             reopen: "Reopen", duplicate: "Duplicate" };
export const FIELD_TEXT = [["reason", "Reason"], ["crew", "To crew"], ["duplicate_of", "Duplicate of"],
                           ["note", "Note for the caller"], ["internal_note", "Internal note"]];

export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function entry(item) {
  const li = el("li", undefined, "refused-item");
  li.dataset.key = item.key;
  const head = el("p");
  head.append(el("strong", `${ACTION_TEXT[item.fields.action] || item.fields.action} #${ticketOf(item)}`),
              ` was not done: ${item.message}`);
  li.append(head);
  li.append(...keptFields(item.fields));
  if (item.hadPhoto) li.append(el("p", "A photo went with it: take it again if it is still needed.", "muted"));
  const row = el("p", undefined, "refused-row");
  const open = el("a", "Open the ticket");
  open.href = item.url.replace(/\/actions$/, "");
  const dismiss = el("button", "Dismiss", "small");
  dismiss.type = "button";
  dismiss.addEventListener("click", () => dismissRefused(item.key));
  row.append(open, " ", dismiss);
  li.append(row);
  return li;
}

// What the crew wrote or chose for an action, one paragraph a field (kept-note, kept-internal-note…).
export function keptFields(fields) {
  return FIELD_TEXT.filter(([name]) => fields[name]).map(([name, label]) =>
    el("p", `${label}: ${fields[name]}`, `kept-${name.replace("_", "-")}`));
}

export function showRefused() {
  const box = document.getElementById("refused");
  if (!box) return;
  const items = refused();
  box.hidden = items.length === 0;
  box.querySelector("ul").replaceChildren(...items.map(entry));
}

window.addEventListener("pin311:refused", showRefused);
window.addEventListener("storage", showRefused);    // another tab refused or dismissed one
