// What this phone holds for the crew member signed in: the actions waiting to be sent, in the order
// they will go and with what was typed (so a note is visibly safe), and the last ones sent, with when
// and what the ticket became. Refused ones are listed by crew-refused.js.
import { pending, sent, ticketOf } from "./crew-queue.js";
import { ACTION_TEXT, el, keptFields } from "./crew-refused.js";

const SENT_SHOWN = 8;

function time(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function line(className, item, action) {
  const li = el("li", undefined, className);
  li.dataset.key = item.key;
  li.dataset.ticket = ticketOf(item);
  li.dataset.action = action;
  const link = el("a", `${ACTION_TEXT[action] || action} #${ticketOf(item)}`);
  link.href = item.url.replace(/\/actions$/, "");
  li.append(link);
  return li;
}

function waitingLine(item) {
  const li = line("waiting-item", item, item.fields.action);
  li.append(" ", el("span", `saved ${time(item.queuedAt)}${item.photo ? " · with a photo" : ""}`, "muted"));
  li.append(...keptFields(item.fields));
  return li;
}

function sentLine(item) {
  const li = line("sent-item", item, item.action);
  const now = item.status ? ` · the ticket is ${item.status.replace("_", " ")}` : "";
  li.append(" ", el("span", `sent ${time(item.sentAt)}${item.repeated ? " (already received)" : ""}${now}`, "muted"));
  return li;
}

export function showOutbox() {
  const box = document.getElementById("outbox");
  if (!box) return;
  const waiting = pending();
  const done = sent().slice(-SENT_SHOWN).reverse();
  box.hidden = !waiting.length && !done.length;
  document.getElementById("outbox-waiting-box").hidden = !waiting.length;
  document.getElementById("outbox-sent-box").hidden = !done.length;
  document.getElementById("outbox-waiting").replaceChildren(...waiting.map(waitingLine));
  document.getElementById("outbox-sent").replaceChildren(...done.map(sentLine));
}

window.addEventListener("pin311:queue", showOutbox);
window.addEventListener("storage", showOutbox);       // another tab queued or sent one
