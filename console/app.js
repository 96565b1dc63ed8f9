// The console's shell: sign-in, navigation between the sections (hash routes, so that the
// back button and bookmarks work), and sign-out.
import { currentSession, signIn, signOut } from "./api.js";
import { h, say, show } from "./dom.js";
import { datasetsView } from "./datasets.js";
import { forecastView } from "./forecast.js";
import { accuracyView } from "./accuracy.js";
import { pipelineView } from "./pipeline.js";
import { webhooksView } from "./webhooks.js";
import { deadLettersView } from "./deadletters.js";

let session = null;
/** Work a view left running (live refresh), stopped when another view opens. */
let stopCurrent = null;

const routes = [
  [/^#\/datasets\/([^/]+)\/accuracy$/, (m) => accuracyView(decodeURIComponent(m[1]))],
  [/^#\/datasets\/([^/]+)$/, (m) => forecastView(decodeURIComponent(m[1]))],
  [/^#\/pipeline$/, () => pipelineView()],
  [/^#\/webhooks$/, () => webhooksView()],
  [/^#\/deadletters$/, () => deadLettersView()],
  [/^(#\/datasets)?$/, () => datasetsView(session)],
];

async function route() {
  if (stopCurrent) { stopCurrent(); stopCurrent = null; }
  if (!session) return signInView();
  const hash = location.hash || "#/datasets";
  const section = hash.split("/")[1] || "datasets";
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  say("");
  for (const [pattern, view] of routes) {
    const m = hash.match(pattern);
    if (m) {
      try { stopCurrent = (await view(m)) || null; } catch (e) { say(e.message, true); }
      return;
    }
  }
  show(h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/datasets" }, "Datasets")));
}

function signedIn(s) {
  session = s;
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = false;
  document.getElementById("who").textContent = `${s.tenant} · ${s.scope}`;
  document.title = `Almanac — ${s.tenant}`;
}

function signedOut() {
  session = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("who").textContent = "";
  document.title = "Almanac console";
}

function signInView() {
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const error = h("p", { id: "signin-error", class: "error", role: "alert" });
  const form = h("form", { class: "signin", id: "signin-form" },
    h("h1", {}, "Sign in"),
    h("p", {}, "Sign in with a tenant token (alm_…) of read or admin scope. It is exchanged for a session cookie and not kept in the browser."),
    h("label", { for: "token" }, "Tenant token"), input, error,
    h("p", {}, h("button", { type: "submit", id: "signin" }, "Sign in")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const s = await signIn(input.value.trim());
      input.value = "";
      signedIn(s);
      if (!location.hash || location.hash === "#/signin") location.hash = "#/datasets"; else route();
    } catch (e) {
      error.textContent = e.message;
    }
  });
  show(form);
  input.focus();
}

document.getElementById("sign-out").addEventListener("click", async () => {
  await signOut();
  signedOut();
  say("Signed out.");
  location.hash = "#/signin";
  signInView();
});
window.addEventListener("almanac:signed-out", () => { if (session) { signedOut(); say("The session ended; sign in again.", true); signInView(); } });
window.addEventListener("hashchange", route);

(async () => {
  try {
    const s = await currentSession();
    if (s) signedIn(s);
  } catch (e) {
    say(e.message, true);
  }
  route();
})();
