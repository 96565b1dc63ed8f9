// Dead letters: the tenant's events that failed for good, with the error and the attempts
// made, the record itself on request, and redrive (the event goes back to where it failed).
import { request, seg } from "./api.js";
import { h, say, show, table, when } from "./dom.js";

export async function deadLettersView(status = "open") {
  const page = await request(`/v1/deadletters?status=${status}&limit=100`);
  const filter = h("select", { id: "letters-status" }, ["open", "redriven", "discarded", "all"].map((s) => h("option", { value: s, selected: s === status }, s)));
  filter.addEventListener("change", () => deadLettersView(filter.value).catch((e) => say(e.message, true)));
  const shown = h("section", { id: "letter", "aria-live": "polite" });
  show(h("h1", {}, "Dead letters"),
    h("p", {}, h("label", { for: "letters-status" }, "Show "), filter),
    page.items.length === 0 ? h("p", { id: "no-letters" }, `No ${status === "all" ? "" : status + " "}dead letters.`) : table([
      ["Id", (d) => d.id, { numeric: true }], ["Failed in", (d) => d.stage], ["Event", (d) => [h("code", {}, d.event_id), " ", d.event_type || ""]],
      ["Error", (d) => [h("strong", {}, d.error_code), ": ", d.error]], ["Attempts", (d) => d.attempts, { numeric: true }],
      ["Status", (d) => h("span", { "data-status": d.status }, d.status)], ["When", (d) => when(d.created_at)],
      ["", (d) => [
        h("button", { type: "button", class: "secondary", onclick: async () => {
          try {
            const full = await request(`/v1/deadletters/${seg(String(d.id))}`);
            shown.replaceChildren(h("h2", {}, `Dead letter ${d.id}`), h("pre", {}, full.record ?? "(no record)"));
          } catch (e) { say(e.message, true); }
        } }, "Show"),
        d.status === "open" ? h("button", { type: "button", "data-redrive": d.id, onclick: async (e) => {
          e.target.disabled = true;
          try {
            const r = await request(`/v1/deadletters/${seg(String(d.id))}/redrive`, { method: "POST" });
            say(`Dead letter ${d.id} redriven to ${r.topic || "its topic"}.`);
            await deadLettersView(status);
          } catch (x) { say(x.message, true); e.target.disabled = false; }
        } }, "Redrive") : "",
      ]],
    ], page.items, { id: "letters" }), shown);
}
