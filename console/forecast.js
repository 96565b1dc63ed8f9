// The forecast view of a dataset: find an item among thousands (searched and paged by the
// API), then one chart with its history, the forecast's median and quantile band, and the
// predictors' backtest windows against the actuals (zoom by dragging, hover for values, real
// UTC timestamps on the axis); the chosen model and its backtest metrics beside it; the
// values as a table; the forecast as CSV.
import { request, seg } from "./api.js";
import { h, num, say, show, table, when } from "./dom.js";

const PAGE = 50;

/** The median's level, and the outermost lower and upper levels, of a forecast's quantiles. */
export function bandLevels(levels) {
  const sorted = [...levels].sort((a, b) => a - b);
  const median = sorted.reduce((best, l) => (Math.abs(l - 0.5) < Math.abs(best - 0.5) ? l : best), sorted[0]);
  return { low: sorted[0], median, high: sorted[sorted.length - 1] };
}

/** The key of a quantile level in a forecast point: 0.1 → "p10", 0.05 → "p5", 0.975 → "p97.5". */
const key = (level) => `p${+(level * 100).toFixed(6)}`;

export async function forecastView(name) {
  const dataset = await request(`/v1/datasets/${seg(name)}`);
  const state = { cursors: [null], page: 0, search: "", item: null };
  const search = h("input", { id: "item-search", type: "search", placeholder: "Search items", "aria-describedby": "item-count" });
  const list = h("ul", { id: "items", "aria-label": "Items" });
  const count = h("p", { id: "item-count", class: "legend" });
  const prev = h("button", { type: "button", class: "secondary", id: "items-prev" }, "Previous");
  const next = h("button", { type: "button", class: "secondary", id: "items-next" }, "Next");
  const detail = h("section", { id: "item-detail", "aria-live": "polite" },
    h("p", {}, dataset.live_forecast_id ? "Pick an item to see its forecast." : "This dataset has no forecast yet: upload data and wait for the pipeline."));

  async function loadItems() {
    const cursor = state.cursors[state.page];
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (state.search) q.set("search", state.search);
    if (cursor) q.set("cursor", cursor);
    const page = await request(`/v1/datasets/${seg(name)}/items?${q}`);
    state.cursors[state.page + 1] = page.next_cursor;
    list.replaceChildren(...page.items.map((it) => h("li", {}, h("button", {
      type: "button", "data-item": it.item_id, "aria-pressed": String(it.item_id === state.item), onclick: () => pick(it.item_id),
    }, it.item_id))));
    count.textContent = page.items.length === 0 ? "No items match." : `Page ${state.page + 1}: ${page.items.length} item(s)`;
    prev.disabled = state.page === 0;
    next.disabled = !page.next_cursor;
  }

  async function pick(item) {
    state.item = item;
    for (const b of list.querySelectorAll("button[data-item]")) b.setAttribute("aria-pressed", String(b.dataset.item === item));
    try { await itemDetail(name, dataset, item, detail); } catch (e) { say(e.message, true); }
  }

  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.search = search.value.trim(); state.page = 0; state.cursors = [null]; loadItems().catch((e) => say(e.message, true)); }, 250);
  });
  prev.addEventListener("click", () => { state.page = Math.max(0, state.page - 1); loadItems().catch((e) => say(e.message, true)); });
  next.addEventListener("click", () => { state.page += 1; loadItems().catch((e) => say(e.message, true)); });

  show(
    h("h1", {}, `Forecast — ${name}`),
    h("p", {}, `Horizon ${dataset.horizon} · frequency ${dataset.frequency || "inferred"} · version ${dataset.latest_version ?? "—"} · live forecast `,
      h("code", {}, dataset.live_forecast_id || "none"), " · ", h("a", { href: `#/datasets/${seg(name)}/accuracy` }, "accuracy")),
    h("div", { class: "forecast-layout" },
      h("aside", { class: "items" }, h("label", { for: "item-search" }, "Items"), search, count, list, h("div", { class: "pager" }, prev, next)),
      detail));
  await loadItems();
  const first = list.querySelector("button[data-item]");
  if (first && dataset.live_forecast_id) await pick(first.dataset.item);
}

async function itemDetail(name, dataset, item, container) {
  const q = `item=${encodeURIComponent(item)}`;
  const [forecast, history, backtests] = await Promise.all([
    request(`/v1/datasets/${seg(name)}/forecast?${q}`).catch((e) => (e.status === 404 ? null : Promise.reject(e))),
    request(`/v1/datasets/${seg(name)}/history?${q}&limit=2000`).catch((e) => (e.status === 404 ? { points: [] } : Promise.reject(e))),
    request(`/v1/datasets/${seg(name)}/backtests?${q}`),
  ]);
  const points = forecast?.items?.[0]?.points || [];
  const levels = forecast?.quantiles || dataset.quantiles;
  const band = bandLevels(levels);
  // One row per timestamp: [time, history, forecast band, backtest band], each band [low, median, high].
  const rows = new Map();
  const row = (iso) => {
    if (!rows.has(iso)) rows.set(iso, [new Date(iso), null, null, null]);
    return rows.get(iso);
  };
  for (const p of history.points) row(p.timestamp)[1] = [p.value, p.value, p.value];
  for (const p of points) row(p.timestamp)[2] = [p[key(band.low)], p[key(band.median)], p[key(band.high)]];
  const seen = new Set();
  for (const b of backtests.items) {
    const w = b.window;
    if (!w || seen.has(w.timestamps[0])) continue;
    seen.add(w.timestamps[0]);
    const lo = w.levels.indexOf(band.low), mid = w.levels.indexOf(band.median), hi = w.levels.indexOf(band.high);
    const pick = (qs, i, fallback) => (i >= 0 ? qs[i] : qs[fallback]);
    w.timestamps.forEach((t, s) => {
      const qs = w.quantiles[s];
      row(t)[3] = [pick(qs, lo, 0), pick(qs, mid, Math.floor(qs.length / 2)), pick(qs, hi, qs.length - 1)];
    });
  }
  const data = [...rows.values()].sort((a, b) => a[0] - b[0]);
  const chartBox = h("div", { id: "chart", class: "chart", role: "img",
    "aria-label": `Chart of item ${item}: history, forecast median with the p${band.low * 100}–p${band.high * 100} band, and backtests. The values are in the table below.` });
  const legend = h("div", { id: "legend", class: "legend" });
  const live = backtests.items.find((b) => b.live) || backtests.items[0];
  const download = h("button", { type: "button", id: "download-csv", onclick: () => downloadCSV(name, item) }, "Download forecast CSV");

  container.replaceChildren(
    h("h2", {}, `Item ${item}`),
    chartBox, legend,
    h("div", { class: "panel", id: "model" }, modelPanel(live)),
    download,
    h("details", { id: "values" }, h("summary", {}, `Forecast values (${points.length} steps)`),
      table([["Timestamp", (p) => when(p.timestamp)], ["Mean", (p) => num(p.mean, 6), { numeric: true }],
        ...levels.map((l) => [key(l), (p) => num(p[key(l)], 6), { numeric: true }])], points, { id: "forecast-table" })),
    h("details", {}, h("summary", {}, "Backtests"), table([
      ["Predictor", (b) => b.predictor_id], ["Trained", (b) => when(b.created_at)], ["Model", (b) => b.model || "—"],
      ["Window", (b) => (b.window ? `${when(b.window.timestamps[0])} → ${when(b.window.timestamps.at(-1))}` : "—")],
      ["WAPE", (b) => num(b.metrics?.wape ?? b.metrics?.WAPE)], ["Live", (b) => (b.live ? "yes" : "")]], backtests.items)));

  if (!window.Dygraph) { chartBox.textContent = "The charting library did not load (install libjs-dygraphs on the server)."; return; }
  if (data.length === 0) { chartBox.textContent = "No data for this item."; return; }
  const last = data[data.length - 1][0].getTime();
  const horizonSpan = points.length > 1 ? new Date(points.at(-1).timestamp) - new Date(points[0].timestamp) : 0;
  const start = horizonSpan > 0 ? Math.max(data[0][0].getTime(), last - horizonSpan * 6) : data[0][0].getTime();
  const graph = new window.Dygraph(chartBox, data, {
    labels: ["Time", "History", `Forecast (median, p${band.low * 100}–p${band.high * 100})`, "Backtest"],
    customBars: true, labelsUTC: true, labelsDiv: legend, legend: "always", showRangeSelector: true,
    colors: ["#222222", "#0b4f9c", "#b35900"], fillAlpha: 0.2, strokeWidth: 1.5,
    series: { Backtest: { strokePattern: [6, 3] } },
    dateWindow: [start, last], ylabel: "value", connectSeparatedPoints: false,
  });
  // The chart, for people's scripts and the console's tests: window.almanacChart.getValue(row, col).
  window.almanacChart = graph;
  chartBox.dataset.points = String(data.length);
}

function modelPanel(b) {
  if (!b) return h("p", {}, "No predictor yet.");
  const m = b.metrics || {};
  const shown = Object.entries(m).filter(([, v]) => typeof v === "number").slice(0, 8);
  return [
    h("p", {}, "Chosen model: ", h("strong", { id: "chosen-model" }, b.model || "—"), ` · predictor ${b.predictor_id} (${b.kind}), trained ${when(b.created_at)} on version ${b.dataset_version}`),
    h("div", { class: "metrics", id: "backtest-metrics" }, shown.map(([k, v]) => h("div", {}, h("div", { class: "k" }, `backtest ${k}`), h("div", {}, num(v))))),
  ];
}

async function downloadCSV(name, item) {
  try {
    const text = await request(`/v1/datasets/${seg(name)}/forecast?item=${encodeURIComponent(item)}`, { accept: "text/csv" });
    const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    const a = h("a", { href: url, download: `${name}-${item}-forecast.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) { say(e.message, true); }
}
