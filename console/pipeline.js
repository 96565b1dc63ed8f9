// The pipeline: each data arrival with the chain of events it started (from the archive's
// causation ids) and the time each step took, and the functions' state — instances, lag,
// GPU queue, crash-looping, the tenant's recent failures — refreshed live.
import { request } from "./api.js";
import { duration, h, show, table, when } from "./dom.js";

const STEPS = [
  ["almanac.data.arrived", "arrived"], ["almanac.dataset.imported", "imported"], ["almanac.dataset.rejected", "rejected"],
  ["almanac.predictor.trained", "trained"], ["almanac.accuracy.breached", "breached"],
  ["almanac.forecast.created", "forecast"], ["almanac.forecast.exported", "exported"],
];
const label = (type) => (STEPS.find(([t]) => t === type) || [type, type.replace(/^almanac\./, "")])[1];

/** An arrival's chain as a list of steps: each event with the time since the previous one, then the deliveries. */
export function chainSteps(arrival) {
  const steps = [];
  let previous = 0;
  for (const s of arrival.steps) {
    steps.push({ name: label(s.type), type: s.type, took: s.after_ms - previous, at: s.after_ms, subject: s.subject });
    previous = Math.max(previous, s.after_ms);
    for (const d of s.deliveries || []) {
      const at = d.delivered_at ? new Date(d.delivered_at) - new Date(arrival.archived_at) : null;
      steps.push({ name: d.state === "delivered" ? "delivered" : `delivery ${d.state}`, type: "delivery", took: at === null ? null : at - s.after_ms, at, attempts: d.attempts });
    }
  }
  return steps;
}

function arrivalRow(a) {
  const steps = chainSteps(a);
  return h("li", { class: "arrival", "data-arrival": a.event_id },
    h("div", {}, h("strong", {}, a.steps[0]?.subject || "—"), ` · ${when(a.archived_at)} · `, h("code", {}, a.event_id)),
    h("ol", { class: "chain", "aria-label": `Chain of arrival ${a.event_id}` }, steps.map((s, i) => h("li", { "data-step": s.name, title: s.type },
      `${s.name}`, i === 0 ? "" : ` +${duration(s.took)}`, s.attempts > 1 ? ` (${s.attempts} attempts)` : ""))),
    h("div", { class: "legend" }, steps.length > 1 && steps.at(-1).at !== null ? `total ${duration(steps.at(-1).at)}` : ""));
}

export async function pipelineView() {
  const arrivals = h("ol", { id: "arrivals", class: "plain" });
  const more = h("button", { type: "button", class: "secondary", id: "arrivals-more", hidden: true }, "Older arrivals");
  const functions = h("div", { id: "functions" });
  const checked = h("p", { class: "legend", id: "functions-checked" });
  let cursor = null;

  async function loadArrivals(append) {
    const page = await request(`/v1/arrivals?limit=20${cursor && append ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    const rows = page.items.map(arrivalRow);
    if (append) arrivals.append(...rows); else arrivals.replaceChildren(...rows);
    if (!append && rows.length === 0) arrivals.replaceChildren(h("li", {}, "No data arrivals yet."));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }
  async function loadFunctions() {
    const f = await request("/v1/functions");
    functions.replaceChildren(table([
      ["Function", (x) => x.name], ["Instances", (x) => `${x.instances} / ${x.concurrency}`, { numeric: true }],
      ["Lag", (x) => x.lag ?? "?", { numeric: true }], ["GPU", (x) => x.gpu + (x.gpu_waiting_since ? ` · queued since ${when(x.gpu_waiting_since)}` : "")],
      ["State", (x) => (x.crash_looping ? h("span", { class: "pill bad" }, `crash-looping (${x.consecutive_crashes} exits, held until ${when(x.held_until)})`) : x.instances > 0 ? "running" : "scaled to zero")],
      ["Recent failures", (x) => (x.recent_failures.length === 0 ? "—" : h("ul", {}, x.recent_failures.map((r) => h("li", {}, `${when(r.started_at)} ${r.outcome} (attempt ${r.attempt}): ${r.error || ""}`))))],
    ], f.items, { id: "functions-table" }));
    checked.textContent = `Checked ${when(f.checked_at)}; refreshed every 3 s.`;
  }

  more.addEventListener("click", () => loadArrivals(true));
  show(h("h1", {}, "Pipeline"), h("h2", {}, "Functions"), functions, checked,
    h("h2", {}, "Data arrivals"), h("p", {}, "Each arrival and the events it caused, with the time each step took."), arrivals, more);
  await Promise.all([loadArrivals(false), loadFunctions()]);
  let busy = false;
  const timer = setInterval(async () => {
    if (busy) return;
    busy = true;
    try { await loadFunctions(); if (!cursor || arrivals.children.length <= 20) await loadArrivals(false); } catch { /* shown on the next view */ } finally { busy = false; }
  }, 3000);
  return () => clearInterval(timer);
}
