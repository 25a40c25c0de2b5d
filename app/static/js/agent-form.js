// Pieces of the call form: an accessible autocomplete list, and a category's questions as fields
// (Open311 attribute datatypes) with the same checks the server makes.
import { el } from "./agent-api.js";

// A combobox over an <input> and a <ul role=listbox>: ↓/↑ move, Enter picks, Escape closes.
export function combobox(input, list, { search, render, pick }) {
  let items = [], active = -1, token = 0;
  const close = () => { list.hidden = true; input.setAttribute("aria-expanded", "false"); active = -1;
                        input.removeAttribute("aria-activedescendant"); };
  const mark = () => {
    [...list.children].forEach((li, i) => li.setAttribute("aria-selected", i === active ? "true" : "false"));
    if (active >= 0 && list.children[active]) {
      input.setAttribute("aria-activedescendant", list.children[active].id);
      list.children[active].scrollIntoView({ block: "nearest" });
    }
  };
  const choose = (i) => { const item = items[i]; if (!item) return; close(); pick(item); };
  const show = (found, message) => {
    items = found; active = found.length ? 0 : -1;
    list.replaceChildren(...found.map((item, i) => {
      const li = el("li", { role: "option", id: `${list.id}-${i}`, "aria-selected": "false" }, render(item, i));
      li.addEventListener("mousedown", (e) => { e.preventDefault(); choose(i); });
      return li;
    }));
    if (!found.length && message) list.replaceChildren(el("li", { class: "empty", role: "presentation" }, message));
    list.hidden = !found.length && !message;
    input.setAttribute("aria-expanded", String(!list.hidden));
    mark();
  };
  input.addEventListener("input", async () => {
    const mine = ++token;
    const q = input.value.trim();
    if (!q) { show([]); return; }
    try {
      const { found, message } = await search(q);
      if (mine === token) show(found, message);
    } catch (err) {
      if (mine === token && err.name !== "AbortError") show([], err.message);
    }
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" && items.length) { e.preventDefault(); active = (active + 1) % items.length; mark();
      list.hidden = false; input.setAttribute("aria-expanded", "true"); }
    else if (e.key === "ArrowUp" && items.length) { e.preventDefault(); active = (active - 1 + items.length) % items.length; mark(); }
    else if (e.key === "Enter") { e.preventDefault(); if (!list.hidden && active >= 0) choose(active); }
    else if (e.key === "Escape") { close(); }
  });
  // Closed a moment after focus leaves, unless it came back meanwhile: an agent who tabs out and back (or
  // anything that moves focus and returns it) would otherwise lose the list that answers what they typed.
  input.addEventListener("blur", () => setTimeout(() => { if (document.activeElement !== input) close(); }, 150));
  // clear: forget the options too (a closed list keeps them for ↓), e.g. when the next call starts.
  return { close, clear: () => show([]), items: () => items, relabel: (i, fn) => fn(list.children[i]) };
}

function fieldId(code) { return `attr-${code.replace(/[^A-Za-z0-9_-]/g, "_")}`; }

// The category's questions as form fields.
export function renderAttributes(container, service) {
  const questions = (service?.attributes || []).filter((a) => a.variable !== false);
  container.replaceChildren(...questions.map((a) => {
    const id = fieldId(a.code);
    const label = el("label", { for: id }, a.description || a.code, a.required ? el("span", { class: "req" }, " *") : null);
    let input;
    const common = { id, "data-code": a.code, "data-type": a.datatype, "aria-required": a.required ? "true" : null,
                     "aria-describedby": `${id}-err` };
    switch (a.datatype) {
      case "singlevaluelist":
        input = el("select", common, el("option", { value: "" }, "— choose —"),
                   (a.values || []).map((v) => el("option", { value: v.key }, v.name ?? v.key)));
        break;
      case "multivaluelist":
        input = el("fieldset", { ...common, class: "checks" }, el("legend", { class: "sr-only" }, a.description || a.code),
                   (a.values || []).map((v) => el("label", { class: "check" },
                     el("input", { type: "checkbox", value: v.key, name: a.code }), " ", v.name ?? v.key)));
        return el("div", { class: "field" }, el("span", { class: "label", id: `${id}-label` }, a.description || a.code,
                  a.required ? el("span", { class: "req" }, " *") : null), input, el("p", { class: "err", id: `${id}-err` }));
      case "number":
        // the question's range, and whole numbers for a count (the server refuses the rest too; here the
        // agent sees it before sending)
        input = el("input", { ...common, type: "number", step: a.integer ? "1" : "any",
                              inputmode: a.integer ? "numeric" : "decimal",
                              ...(a.min != null ? { min: a.min } : {}), ...(a.max != null ? { max: a.max } : {}) });
        break;
      case "datetime":
        input = el("input", { ...common, type: "datetime-local" });
        break;
      case "text":
        input = el("textarea", { ...common, rows: "2", maxlength: "4000" });
        break;
      default:
        input = el("input", { ...common, type: "text", maxlength: "255" });
    }
    return el("div", { class: "field" }, label, input, el("p", { class: "err", id: `${id}-err` }));
  }));
}

// What a number question accepts, in the server's words (gis.services.number_rule).
function numberRule(a) {
  const kind = a.integer ? "a whole number" : "a number";
  if (a.min != null && a.max != null) return `${kind} from ${a.min} to ${a.max}`;
  if (a.min != null) return `${kind} of at least ${a.min}`;
  if (a.max != null) return `${kind} of at most ${a.max}`;
  return kind;
}

// Read and check the answers; returns { values, errors: [{code, message}] } and marks bad fields.
export function readAttributes(container, service) {
  const values = {}, errors = [];
  for (const a of (service?.attributes || []).filter((x) => x.variable !== false)) {
    const node = container.querySelector(`[data-code="${CSS.escape(a.code)}"]`);
    if (!node) continue;
    let value, problem = null;
    if (a.datatype === "multivaluelist") {
      value = [...node.querySelectorAll("input:checked")].map((c) => c.value);
      if (!value.length) value = null;
    } else {
      value = node.value.trim() || null;
      if (value !== null && a.datatype === "number" && !Number.isFinite(Number(value))) problem = "must be a number";
      if (value === null && a.datatype === "number" && node.validity && node.validity.badInput) problem = "must be a number";
      if (!problem && value !== null && a.datatype === "number" &&
          ((a.min != null && Number(value) < a.min) || (a.max != null && Number(value) > a.max) ||
           (a.integer && !Number.isInteger(Number(value))))) {
        problem = `must be ${numberRule(a)}, not ${value}`;
      }
      if (value !== null && a.datatype === "datetime") {
        const d = new Date(value);
        if (Number.isNaN(d.getTime())) problem = "must be a date and time"; else value = d.toISOString();
      }
    }
    if (value === null && a.required && !problem) problem = "is required";
    if (problem) errors.push({ code: a.code, message: `${a.description || a.code} ${problem}` });
    else if (value !== null) values[a.code] = value;
    markField(container, a.code, problem ? `${a.description || a.code} ${problem}` : "");
  }
  return { values, errors };
}

export function markField(container, code, message) {
  const node = container.querySelector(`[data-code="${CSS.escape(code)}"]`);
  if (!node) return;
  node.setAttribute("aria-invalid", message ? "true" : "false");
  const err = container.querySelector(`#${CSS.escape(node.id)}-err`);
  if (err) err.textContent = message || "";
}
