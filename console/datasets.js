// Datasets: the list (frequency, horizon, items, latest version, the last import's report,
// models), a form to create one, and a file upload into one, followed to its report.
import { request, seg } from "./api.js";
import { h, say, show, table, when } from "./dom.js";

/** The last import's report, as text and a list of the rejected lines. */
function reportCell(imp) {
  if (!imp) return "no import yet";
  const r = imp.report || {};
  const parts = [h("span", { class: imp.accepted ? "pill good" : "pill bad" }, imp.accepted ? "accepted" : "rejected"),
    ` ${r.rows_read ?? 0} rows read, ${r.rows_rejected ?? 0} rejected · ${when(imp.created_at)}`];
  if (r.reason) parts.push(h("div", { class: "error" }, r.reason));
  if (r.problems && r.problems.length) {
    parts.push(h("details", {}, h("summary", {}, `${r.problems.length} rejected line(s)`),
      h("ul", {}, r.problems.map((p) => h("li", {}, `line ${p.line}${p.item_id ? ` (item ${p.item_id})` : ""}: ${p.reason}`)))));
  }
  return h("div", {}, parts);
}

/** The datasets' table, freshly read (each dataset's detail gives its items and last import). */
async function datasetList() {
  const page = await request("/v1/datasets?limit=100");
  const details = await Promise.all(page.items.map((d) => request(`/v1/datasets/${seg(d.name)}`)));
  const rows = details.map((d) => ({ d, version: (d.versions || [])[0], imp: (d.imports || [])[0] }));
  const list = rows.length === 0 ? h("p", { id: "no-datasets" }, "No datasets yet.")
    : table([
      ["Dataset", (r) => h("a", { href: `#/datasets/${seg(r.d.name)}` }, r.d.name)],
      ["Frequency", (r) => r.d.frequency || "inferred"],
      ["Horizon", (r) => r.d.horizon, { numeric: true }],
      ["Items", (r) => r.version ? r.version.items : "—", { numeric: true }],
      ["Version", (r) => r.d.latest_version ?? "—", { numeric: true }],
      ["Last import", (r) => reportCell(r.imp)],
      ["Models", (r) => r.d.models],
      ["Forecast", (r) => r.d.live_forecast_id ? h("a", { href: `#/datasets/${seg(r.d.name)}` }, "view") : "not yet"],
      ["Accuracy", (r) => h("a", { href: `#/datasets/${seg(r.d.name)}/accuracy` }, "accuracy")],
    ], rows, { id: "datasets" });
  return { list, names: page.items.map((d) => d.name) };
}

export async function datasetsView(session) {
  const canChange = session && session.scope === "admin";
  const { list, names } = await datasetList();
  const holder = h("div", { id: "dataset-list" }, list);
  const refresh = async () => holder.replaceChildren((await datasetList()).list);
  const children = [h("h1", {}, "Datasets"), holder];
  if (canChange) children.push(createForm(), uploadForm(names, refresh));
  else children.push(h("p", {}, "Creating datasets and uploading data needs an admin token."));
  show(...children);
}

function createForm() {
  const name = h("input", { id: "new-name", name: "name", required: true, pattern: "[A-Za-z0-9_\\-][A-Za-z0-9._\\-]{0,99}", size: 16 });
  const horizon = h("input", { id: "new-horizon", name: "horizon", type: "number", min: 1, max: 10000, value: 48, required: true, size: 6 });
  const frequency = h("select", { id: "new-frequency", name: "frequency" },
    ["", "hourly", "daily", "weekly", "monthly", "quarterly", "yearly"].map((f) => h("option", { value: f }, f || "infer")));
  const models = h("select", { id: "new-models", name: "models" }, ["statistical", "deep", "champion"].map((m) => h("option", { value: m }, m)));
  const form = h("form", { class: "inline", id: "create-dataset", "aria-labelledby": "create-title" },
    h("h2", { id: "create-title", style: null }, "Create a dataset"),
    h("label", { for: "new-name" }, "Name", name), h("label", { for: "new-horizon" }, "Horizon (steps)", horizon),
    h("label", { for: "new-frequency" }, "Frequency", frequency), h("label", { for: "new-models" }, "Models", models),
    h("button", { type: "submit", id: "create" }, "Create"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim(), horizon: Number(horizon.value), models: models.value };
    if (frequency.value) body.frequency = frequency.value;
    try {
      await request("/v1/datasets", { method: "POST", json: body });
      say(`Dataset ${body.name} created.`);
      location.hash = "#/datasets";
      datasetsView({ scope: "admin" });
    } catch (e) { say(e.message, true); }
  });
  return form;
}

function uploadForm(names, refresh) {
  const dataset = h("select", { id: "upload-dataset", name: "dataset" }, names.map((n) => h("option", { value: n }, n)));
  const file = h("input", { id: "upload-file", name: "file", type: "file", accept: ".csv,.gz,text/csv,application/gzip", required: true });
  const result = h("div", { id: "upload-result", "aria-live": "polite" });
  const form = h("form", { class: "inline", id: "upload" },
    h("h2", {}, "Upload data"),
    h("label", { for: "upload-dataset" }, "Dataset", dataset),
    h("label", { for: "upload-file" }, "CSV file (item_id,timestamp,target_value), or gzip", file),
    h("button", { type: "submit", id: "upload-submit", disabled: names.length === 0 }, "Upload"), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = file.files[0];
    if (!f) return;
    const type = /\.gz$/i.test(f.name) ? "application/gzip" : "text/csv";
    try {
      result.textContent = `Uploading ${f.name} (${f.size} bytes)…`;
      const started = await request(`/v1/datasets/${seg(dataset.value)}/data`, { method: "POST", body: f, contentType: type });
      result.textContent = `Import ${started.import_id}: pending…`;
      const final = await follow(dataset.value, started.import_id, result);
      result.replaceChildren(h("span", { id: "upload-status", class: final.status === "accepted" ? "ok" : "error" },
        `Import ${final.import_id}: ${final.status}` + (final.version ? ` (version ${final.version})` : "")),
        final.report ? reportCell({ accepted: final.status === "accepted", report: final.report, created_at: null }) : "",
        final.error ? h("div", { class: "error" }, final.error) : "");
      await refresh();
    } catch (e) { result.textContent = ""; say(e.message, true); }
  });
  return form;
}

/** Polls an import until ingest has reported on it (every second, for up to ten minutes). */
async function follow(name, id, result) {
  for (let i = 0; i < 600; i++) {
    const s = await request(`/v1/datasets/${seg(name)}/imports/${seg(id)}`);
    if (s.status !== "pending") return s;
    result.textContent = `Import ${id}: pending (${i + 1} s)…`;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return { import_id: id, status: "pending", error: "still pending after ten minutes; see the Pipeline page" };
}

