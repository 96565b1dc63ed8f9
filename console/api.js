// The console's only way to the server: the /v1 API and the sign-in, with the session
// cookie (HttpOnly: this script never sees it) and the session's CSRF value, which is
// kept in this module's memory only — never in local storage, never in a URL.

let csrf = null;

/** An API error: the problem document's detail, with its status. */
export class APIError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

async function problem(response) {
  try {
    const p = await response.json();
    return new APIError(response.status, p.detail || p.error || response.statusText);
  } catch {
    return new APIError(response.status, response.statusText);
  }
}

/** Who is signed in ({tenant, scope, csrf}), or null. */
export async function currentSession() {
  const r = await fetch("/console/session", { credentials: "same-origin", cache: "no-store" });
  if (r.status === 401) return null;
  if (!r.ok) throw await problem(r);
  const s = await r.json();
  csrf = s.csrf;
  return s;
}

/** Exchanges a token for a session cookie. */
export async function signIn(token) {
  const r = await fetch("/console/session", {
    method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
  });
  if (!r.ok) throw await problem(r);
  const s = await r.json();
  csrf = s.csrf;
  return s;
}

/** Ends the session. */
export async function signOut() {
  await fetch("/console/session", { method: "DELETE", credentials: "same-origin", headers: { "X-Almanac-CSRF": csrf || "" } });
  csrf = null;
}

/** Calls the API: request(path, {method, json, body, contentType, accept}) → parsed JSON, text, or null (204). */
export async function request(path, options = {}) {
  const headers = { "X-Almanac-CSRF": csrf || "" };
  let body = options.body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  } else if (options.contentType) {
    headers["Content-Type"] = options.contentType;
  }
  if (options.accept) headers["Accept"] = options.accept;
  const r = await fetch(path, { method: options.method || "GET", credentials: "same-origin", headers, body, cache: "no-store" });
  if (r.status === 401) window.dispatchEvent(new CustomEvent("almanac:signed-out"));
  if (!r.ok) throw await problem(r);
  if (r.status === 204) return null;
  const type = r.headers.get("Content-Type") || "";
  return type.includes("json") ? r.json() : r.text();
}

/** A path segment, encoded. */
export const seg = (s) => encodeURIComponent(s);
