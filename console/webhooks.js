// Webhooks: the tenant's endpoints (add one, its secret shown once), each endpoint's
// deliveries with their state and attempts, and redelivery.
import { request, seg } from "./api.js";
import { h, say, show, table, when } from "./dom.js";

export async function webhooksView() {
  const endpoints = (await request("/v1/webhooks")).items;
  const deliveries = h("section", { id: "deliveries", "aria-live": "polite" });
  const created = h("div", { id: "webhook-created", role: "status" });

  async function showDeliveries(endpoint) {
    const page = await request(`/v1/webhooks/${seg(endpoint.id)}/deliveries?limit=100`);
    deliveries.replaceChildren(h("h2", {}, `Deliveries to ${endpoint.url}`),
      page.items.length === 0 ? h("p", {}, "No deliveries yet.") : table([
        ["Delivery", (d) => d.id, { numeric: true }], ["Event", (d) => d.event_type], ["Event id", (d) => h("code", {}, d.event_id)],
        ["State", (d) => h("span", { class: d.state === "delivered" ? "pill good" : d.state === "failed" ? "pill bad" : "pill", "data-state": d.state }, d.state)],
        ["Attempts", (d) => h("span", { "data-attempts": d.attempts }, d.attempts), { numeric: true }],
        ["Last answer", (d) => (d.last_status ? `HTTP ${d.last_status}` : "") + (d.last_error ? ` ${d.last_error}` : "") || "—"],
        ["Created", (d) => when(d.created_at)], ["Delivered", (d) => when(d.delivered_at)],
        ["", (d) => h("button", { type: "button", class: "secondary", "data-redeliver": d.id, onclick: async (e) => {
          e.target.disabled = true;
          try {
            await request(`/v1/deliveries/${seg(String(d.id))}/redeliver`, { method: "POST" });
            say(`Delivery ${d.id} queued again.`);
            setTimeout(() => showDeliveries(endpoint).catch((x) => say(x.message, true)), 1500);
          } catch (x) { say(x.message, true); e.target.disabled = false; }
        } }, "Redeliver")],
      ], page.items, { id: "deliveries-table" }),
      h("button", { type: "button", class: "secondary", id: "deliveries-refresh", onclick: () => showDeliveries(endpoint).catch((x) => say(x.message, true)) }, "Refresh"));
  }

  const url = h("input", { id: "webhook-url", type: "url", required: true, size: 40, placeholder: "https://erp.example.com/hooks/almanac" });
  const events = h("input", { id: "webhook-events", required: true, size: 28, value: "almanac.forecast.exported" });
  const allowPrivate = h("input", { id: "webhook-private", type: "checkbox" });
  const form = h("form", { class: "inline", id: "add-webhook" }, h("h2", {}, "Add an endpoint"),
    h("label", { for: "webhook-url" }, "URL", url), h("label", { for: "webhook-events" }, "Event types (comma-separated; a trailing * matches by prefix)", events),
    h("label", { for: "webhook-private" }, "Private address (if the installation allows)", allowPrivate),
    h("button", { type: "submit", id: "add-webhook-submit" }, "Add"), created);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const made = await request("/v1/webhooks", { method: "POST", json: {
        url: url.value.trim(), events: events.value.split(",").map((s) => s.trim()).filter(Boolean), allow_private: allowPrivate.checked } });
      await webhooksView();
      document.getElementById("webhook-created").replaceChildren(h("p", {}, `Endpoint ${made.id} added. Its signing secret, shown once: `, h("code", { id: "webhook-secret" }, made.secret)));
    } catch (x) { say(x.message, true); }
  });

  show(h("h1", {}, "Webhooks"),
    endpoints.length === 0 ? h("p", {}, "No endpoints yet.") : table([
      ["Endpoint", (w) => h("code", {}, w.id)], ["URL", (w) => w.url], ["Events", (w) => w.events.join(", ")],
      ["State", (w) => (w.disabled ? h("span", { class: "pill bad" }, `disabled: ${w.disabled}`) : "active")], ["Added", (w) => when(w.created_at)],
      ["", (w) => h("button", { type: "button", class: "secondary", "data-endpoint": w.id, onclick: () => showDeliveries(w).catch((x) => say(x.message, true)) }, "Deliveries")],
    ], endpoints, { id: "endpoints" }),
    deliveries, form);
  if (endpoints.length > 0) await showDeliveries(endpoints[0]);
}
