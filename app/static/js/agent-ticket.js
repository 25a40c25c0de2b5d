// One ticket on demand: the "Ticket #" box, a line of the caller's history or of recent work flies the
// map to the ticket and shows where it stands (status, crew, expected or closed date) in a card.
import { api, el, formatDate } from "./agent-api.js";

export function ticketCard(card, { show: showOnMap, hide: hideOnMap }) {
  let asked = 0;
  const close = () => { card.hidden = true; card.replaceChildren(); hideOnMap(); };

  function frame(title, ...body) {
    card.replaceChildren(
      el("div", { class: "ticket-view-head" }, el("h2", { id: "ticket-view-h" }, title),
         el("button", { type: "button", class: "small", "aria-label": "Close the ticket card", onclick: close }, "×")),
      ...body);
    card.hidden = false;
    card.focus();
  }

  function render(t) {
    const row = (k, label, value) => [el("dt", {}, label), el("dd", { "data-k": k }, value)];
    const closed = t.status === "closed";
    frame(`Ticket #${t.public_id}`, el("dl", { class: "place" },
      row("service", "Category", t.service_name || t.service_code),
      row("status", "Status", t.status.replace("_", " ")),
      closed ? row("closed", "Closed", formatDate(t.closed_at))
        : row("expected", "Expected by", t.expected_at ? formatDate(t.expected_at) : "no target date"),
      row("crew", "Crew", t.crew?.name || "unrouted"),
      row("address", "Address", t.address || "—"),
      ...(t.address_note ? row("address_note", "Caller said", t.address_note) : []),
      row("requested", "Reported", formatDate(t.requested_at))));
  }

  return {
    close,
    async show(raw) {
      const id = String(raw ?? "").trim().replace(/^#\s*/, "");
      if (!id) return;
      const mine = ++asked;
      card.setAttribute("aria-busy", "true");
      try {
        const t = await api(`/api/v1/requests/${encodeURIComponent(id)}`);
        if (mine !== asked) return;        // a later look-up won
        render(t);
        if (t.lat !== null && t.lon !== null) showOnMap(t.lat, t.lon, `#${t.public_id}`);
      } catch (err) {
        if (mine !== asked) return;
        hideOnMap();
        frame("Ticket look-up", el("p", { class: "alert bad" },
          err.status === 404 ? `No ticket #${id}: check the number with the caller.` : err.message));
      } finally {
        if (mine === asked) card.removeAttribute("aria-busy");
      }
    },
  };
}
