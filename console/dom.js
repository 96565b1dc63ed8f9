// Small DOM helpers. Text from the API (item ids, errors, URLs) is always set as text,
// never as HTML: a tenant's data cannot inject markup into the console.

/** Makes an element: h("td", {class: "num"}, "12", child, …). Attributes starting with "on" are listeners. */
export function h(tag, attributes = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attributes || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** A table of rows: columns are [header, (row) => cell content, {numeric}] triples. */
export function table(columns, rows, attributes = {}) {
  const head = h("thead", {}, h("tr", {}, columns.map(([title, , o]) => h("th", { scope: "col", class: o?.numeric ? "num" : null }, title))));
  const body = h("tbody", {}, rows.map((r) => h("tr", {}, columns.map(([, cell, o]) => h("td", { class: o?.numeric ? "num" : null }, cell(r))))));
  return h("table", attributes, head, body);
}

/** Shows a message in the status line (role=status, read out by screen readers). */
export function say(text, isError = false) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = isError ? "status error" : "status";
}

/** A timestamp as the API gives it, shown in UTC without the milliseconds. */
export function when(iso) {
  if (!iso) return "—";
  return iso.replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/Z$/, " UTC");
}

/** A number to a few significant digits ("—" when missing). */
export function num(x, digits = 4) {
  if (x === null || x === undefined || Number.isNaN(x)) return "—";
  return Number(x).toPrecision(digits).replace(/\.?0+$/, "").replace(/\.?0+e/, "e");
}

/** A duration in milliseconds, readably. */
export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120000) return `${(ms / 1000).toFixed(1)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}

/** Replaces the view's content and moves focus to it (keyboard and screen-reader users land on the new page). */
export function show(...children) {
  const v = document.getElementById("view");
  v.replaceChildren(...children);
  v.focus({ preventScroll: true });
}
