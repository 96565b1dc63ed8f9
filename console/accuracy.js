// Accuracy: the monitor's scores of the live forecasts on later actuals over time, against
// the retrain bound, with the breaches and the retrains they started marked on the chart.
import { request, seg } from "./api.js";
import { h, num, show, table, when } from "./dom.js";

export async function accuracyView(name) {
  const [accuracy, predictors] = await Promise.all([
    request(`/v1/datasets/${seg(name)}/accuracy`),
    request(`/v1/datasets/${seg(name)}/predictors?limit=100`),
  ]);
  const measurements = accuracy.items;
  const retrains = predictors.items.filter((p) => p.trigger_type === "almanac.accuracy.breached");
  const chartBox = h("div", { id: "accuracy-chart", class: "chart", role: "img",
    "aria-label": `WAPE of dataset ${name}'s forecasts over time against the retrain bound; the values are in the table below.` });
  const legend = h("div", { class: "legend", id: "accuracy-legend" });
  show(
    h("h1", {}, `Accuracy — ${name}`),
    h("p", {}, h("a", { href: `#/datasets/${seg(name)}` }, "Forecast view"), ` · ${measurements.length} measurement(s), `,
      `${measurements.filter((m) => m.breached).length} breach(es), ${retrains.length} retrain(s) after a breach`),
    chartBox, legend,
    table([["Measured", (m) => when(m.created_at)], ["Forecast", (m) => m.forecast_id], ["Version", (m) => m.dataset_version, { numeric: true }],
      ["Points", (m) => m.points, { numeric: true }], ["WAPE", (m) => num(m.wape), { numeric: true }], ["MASE", (m) => num(m.mase), { numeric: true }],
      ["wQL", (m) => num(m.wql), { numeric: true }], ["Bound", (m) => num(m.bound), { numeric: true }],
      ["Breached", (m) => (m.breached ? h("span", { class: "pill bad" }, "breached") : h("span", { class: "pill good" }, "within"))]],
    measurements, { id: "accuracy-table" }),
    h("h2", {}, "Retrains started by a breach"),
    retrains.length === 0 ? h("p", {}, "None.")
      : table([["Predictor", (p) => p.id], ["Trained", (p) => when(p.created_at)], ["On version", (p) => p.dataset_version, { numeric: true }],
        ["Backtest WAPE", (p) => num(p.metrics?.WAPE), { numeric: true }]], retrains, { id: "retrains" }));

  if (measurements.length === 0) { chartBox.textContent = "No measurements yet: the monitor scores a forecast when later actuals arrive."; return; }
  if (!window.Dygraph) { chartBox.textContent = "The charting library did not load."; return; }
  const data = measurements.map((m) => [new Date(m.created_at), m.wape, m.bound]);
  const graph = new window.Dygraph(chartBox, data, {
    labels: ["Time", "WAPE", "Retrain bound"], labelsUTC: true, labelsDiv: legend, legend: "always", drawPoints: true, pointSize: 4,
    colors: ["#0b4f9c", "#9b1111"], series: { "Retrain bound": { strokePattern: [6, 3] } }, includeZero: true,
    // One measurement alone is drawn in the middle of an hour either side.
    dateWindow: data.length === 1 ? [data[0][0].getTime() - 3600e3, data[0][0].getTime() + 3600e3] : undefined,
  });
  const annotations = measurements.filter((m) => m.breached).map((m) => ({
    series: "WAPE", x: new Date(m.created_at).getTime(), shortText: "B", text: `Breach: WAPE ${num(m.wape)} over the bound ${num(m.bound)}`,
  }));
  // A retrain is marked on the measurement it followed (the chart's points are the
  // measurements), on the bound's line so that it stands apart from that point's breach mark.
  for (const p of retrains) {
    const t = new Date(p.created_at).getTime();
    const before = measurements.filter((m) => new Date(m.created_at).getTime() <= t).at(-1);
    if (before) annotations.push({ series: "Retrain bound", x: new Date(before.created_at).getTime(), shortText: "R", text: `Retrained: predictor ${p.id} at ${when(p.created_at)}`, tickHeight: 20 });
  }
  graph.ready(() => graph.setAnnotations(annotations));
  window.almanacAccuracyChart = graph;
}
