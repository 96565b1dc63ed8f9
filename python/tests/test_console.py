"""The web console in a real browser (Debian's chromium through chromedriver and Selenium)
against a real installation: `almanac up` on the embedded default (Postgres, the Kafka mock
cluster, the router, launcher, ingress and the pipeline's functions) and a local webhook
receiver that checks Standard Webhooks signatures.

The flow a person follows: sign in with tenant acme's token; create a dataset; add a webhook
endpoint; upload the M4 sample from the browser; wait for the forecast; open an item and read
the chart's data points from the page (they must equal what the API answers); search items;
upload later actuals and see the accuracy page; see the arrival's chain in the pipeline page;
redeliver a delivery; redrive a dead letter; sign out. Then tenant globex signs in and sees
none of it. A screenshot of each page is written under .test-output/console/ (or
$ALMANAC_TEST_OUTPUT/console/)."""
import base64
import hashlib
import hmac
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALMANAC = os.path.join(ROOT, ".build", "debug", "almanac")
SAMPLE = os.path.join(ROOT, "examples", "forecast")
OUTPUT = os.path.join(os.environ.get("ALMANAC_TEST_OUTPUT", os.path.join(ROOT, ".test-output")), "console")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fatal(Exception):
    """A failure no amount of waiting mends (the installation exited)."""


def wait_for(what, check, timeout=300, every=0.5):
    """Polls `check` until it returns something truthy; fails with `what` after `timeout` s."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            value = check()
            if value:
                return value
        except Fatal:
            raise
        except Exception as e:  # a page mid-render, a row not there yet
            last = e
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last!r})")


class Receiver:
    """A webhook receiver on loopback that verifies each delivery's signature with the
    endpoint's secret and keeps the verified ones (webhook-id → count, bodies)."""

    def __init__(self):
        self.secret = None
        self.verified = []
        self.rejected = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                wid, ts, sig = (self.headers.get(h, "") for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
                key = base64.b64decode((receiver.secret or "whsec_").removeprefix("whsec_"))
                mac = base64.b64encode(hmac.new(key, f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
                ok = receiver.secret is not None and any(hmac.compare_digest(f"v1,{mac}", s) for s in sig.split())
                if ok:
                    receiver.verified.append((wid, json.loads(body)))
                else:
                    receiver.rejected += 1
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, webhook_id):
        return sum(1 for wid, _ in self.verified if wid == webhook_id)


class Installation:
    """`almanac up` in a scratch folder, on free ports, stopped (with everything it started) at the end."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="almanac-console-")
        os.chmod(self.dir, 0o755)  # the embedded Postgres runs as the postgres user when the tests run as root
        self.state = os.path.join(self.dir, ".almanac")
        env = dict(os.environ, ALMANAC_WEBHOOKS_ALLOW_PRIVATE="1")
        self.log = open(os.path.join(self.dir, "up.out"), "w")
        self.process = subprocess.Popen([ALMANAC, "up", "--state", self.state, "--http-port", str(free_port()),
                                         "--postgres-port", str(free_port())],
                                        cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        endpoints = os.path.join(self.state, "endpoints.env")

        def ready():
            if self.process.poll() is not None:
                with open(self.log.name) as f:
                    raise Fatal("almanac up exited: " + f.read()[-3000:])
            with open(self.log.name) as f:
                return os.path.exists(endpoints) and "ready" in f.read()
        wait_for("almanac up to be ready", ready, timeout=240)
        with open(endpoints) as f:
            self.env = dict(line.strip().split("=", 1) for line in f if "=" in line)
        self.http = self.env["ALMANAC_HTTP"]

    def tenant(self, name):
        out = subprocess.run([ALMANAC, "tenants", "create", name, "--state", self.state], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        return next(line.split()[1] for line in out.splitlines() if line.startswith("token"))

    def api(self, method, path, token, body=None, accept="application/json", content_type="application/json"):
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        headers = {"Authorization": f"Bearer {token}", "Accept": accept}
        if isinstance(body, (dict, list)):
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.http + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if "json" in r.headers.get("Content-Type", "") else text)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "{}")

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class ConsoleTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # No skipping: a machine without the browser fails here, saying what to install.
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver"), (ALMANAC, "the build (swift build)")):
            if not os.path.exists(path):
                raise AssertionError(f"{path} is missing: install {package}")
        os.makedirs(OUTPUT, exist_ok=True)
        cls.almanac = Installation()
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000", "--disable-gpu"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        cls.downloads = tempfile.mkdtemp(prefix="almanac-downloads-")
        options.add_experimental_option("prefs", {"download.default_directory": cls.downloads, "download.prompt_for_download": False})
        cls.browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        cls.browser.set_script_timeout(60)

    @classmethod
    def tearDownClass(cls):
        cls.browser.quit()
        shutil.rmtree(cls.downloads, ignore_errors=True)
        cls.almanac.stop()

    # Helpers over the page.
    def css(self, selector):
        return self.browser.find_element("css selector", selector)

    def all(self, selector):
        return self.browser.find_elements("css selector", selector)

    def text(self, selector):
        found = self.all(selector)
        return found[0].text if found else ""

    def go(self, hash_route):
        """Opens a page of the console; the same page again is reloaded (a hash alone would not)."""
        url = f"{self.almanac.http}/console/{hash_route}"
        if self.browser.current_url == url:
            self.browser.refresh()
        else:
            self.browser.get(url)

    def shot(self, name):
        """Saves the page's screenshot, and checks the page's controls are named for assistive
        technology: every input and select has a label, every button and link a text."""
        self.browser.save_screenshot(os.path.join(OUTPUT, f"{name}.png"))
        unnamed = self.browser.execute_script("""
            const out = [];
            // Only what is rendered is in the accessibility tree (dygraphs keeps a hidden input).
            const shown = (e) => e.getClientRects().length > 0;
            for (const e of [...document.querySelectorAll('input, select')].filter(shown)) {
              const named = (e.id && document.querySelector(`label[for="${e.id}"]`)) || e.closest('label') || e.getAttribute('aria-label');
              if (!named && e.type !== 'hidden') out.push(e.outerHTML.slice(0, 80));
            }
            for (const e of [...document.querySelectorAll('button, a[href]')].filter(shown)) {
              if (!(e.textContent.trim() || e.getAttribute('aria-label'))) out.push(e.outerHTML.slice(0, 80));
            }
            return out;""")
        self.assertEqual(unnamed, [], f"controls without a name on {name}")

    def sign_in(self, token, tenant):
        self.go("#/signin")
        wait_for("the sign-in form", lambda: self.css("#token"), timeout=30)
        from selenium.webdriver.common.keys import Keys
        self.css("#token").send_keys(token, Keys.ENTER)  # the keyboard alone signs in
        wait_for(f"{tenant} to be signed in", lambda: self.text("#who").startswith(tenant + " "), timeout=30)

    def errors_in_console(self):
        """Script errors the pages raised (the refusals the flow provokes on purpose are network
        entries, and are left out)."""
        return [e for e in self.browser.get_log("browser")
                if e["level"] == "SEVERE" and e.get("source") != "network" and "favicon" not in e["message"]]

    def test_the_whole_flow_for_one_tenant_and_nothing_for_another(self):
        a, b = self.almanac, self.almanac
        acme, globex = a.tenant("acme"), a.tenant("globex")
        receiver = Receiver()

        # Sign-in: a bad token is refused with a reason; acme's works.
        self.go("")
        wait_for("the sign-in form", lambda: self.css("#token"), timeout=30)
        self.shot("01-sign-in")
        self.css("#token").send_keys("alm_not-a-token")
        self.css("#signin").click()
        wait_for("the refusal", lambda: "unknown, revoked or expired" in self.text("#signin-error"), timeout=30)
        self.css("#token").clear()
        self.sign_in(acme, "acme")
        cookies = {c["name"]: c for c in self.browser.get_cookies()}
        session = cookies["almanac_session"]
        self.assertTrue(session["httpOnly"])
        self.assertEqual(session["sameSite"], "Strict")
        self.assertNotIn(acme, json.dumps(self.browser.get_cookies()))
        stored = self.browser.execute_script("return JSON.stringify(Object.assign({}, localStorage, sessionStorage))")
        self.assertNotIn(acme, stored)
        self.assertNotIn(acme, self.browser.current_url)
        # The cookie alone does not act: a request without the CSRF header is refused.
        forged = self.browser.execute_async_script("""
            const done = arguments[0];
            fetch('/v1/datasets', {credentials: 'same-origin'}).then(r => done(r.status));""")
        self.assertEqual(forged, 403)

        # Create a dataset from the browser.
        wait_for("the empty dataset list", lambda: self.css("#no-datasets"), timeout=30)
        self.css("#new-name").send_keys("m4")
        self.css("#new-horizon").clear()
        self.css("#new-horizon").send_keys("48")
        self.css("#new-frequency option[value=hourly]").click()
        self.css("#create").click()
        wait_for("the dataset in the list", lambda: "m4" in self.text("#datasets"), timeout=30)

        # A webhook endpoint at the local receiver; its secret is shown once.
        self.go("#/webhooks")
        wait_for("the webhook form", lambda: self.css("#webhook-url"), timeout=30)
        self.css("#webhook-url").send_keys(receiver.url)
        self.css("#webhook-private").click()
        self.css("#add-webhook-submit").click()
        receiver.secret = wait_for("the endpoint's secret", lambda: self.text("#webhook-secret"), timeout=30)
        self.assertTrue(receiver.secret.startswith("whsec_"))

        # Upload the M4 sample from the browser and follow it to its report.
        self.go("#/datasets")
        wait_for("the upload form", lambda: self.css("#upload-file"), timeout=30)
        self.css("#upload-file").send_keys(os.path.join(SAMPLE, "m4-hourly-history.csv"))
        self.css("#upload-submit").click()
        status = wait_for("the import's report", lambda: "pending" not in self.text("#upload-status") and self.text("#upload-status"), timeout=300)
        self.assertIn("accepted", status)
        self.shot("02-datasets-upload")

        # Wait for the forecast, then open an item: the chart's points equal the API's forecast.
        def forecast_shown():
            self.go("#/datasets/m4")
            return wait_for("the chart", lambda: self.css("#chart").get_attribute("data-points"), timeout=20)
        wait_for("the forecast", forecast_shown, timeout=600, every=2)
        item = self.css("#items button[aria-pressed=true]").get_attribute("data-item")
        self.assertEqual(item, "H1")
        status, api_forecast = a.api("GET", "/v1/datasets/m4/forecast?item=H1", acme)
        self.assertEqual(status, 200)
        levels = api_forecast["quantiles"]
        self.assertEqual(levels, [0.1, 0.5, 0.9])
        expected = {int(datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")).timestamp() * 1000): (p["p10"], p["p50"], p["p90"])
                    for p in api_forecast["items"][0]["points"]}
        self.assertEqual(len(expected), 48)
        chart = self.browser.execute_script("""
            const g = window.almanacChart, rows = [];
            for (let r = 0; r < g.numRows(); r++) rows.push([g.getValue(r, 0), g.getValue(r, 1), g.getValue(r, 2), g.getValue(r, 3)]);
            return {labels: g.getLabels(), rows: rows};""")
        self.assertEqual(chart["labels"][:3], ["Time", "History", "Forecast (median, p10–p90)"])
        shown = {int(r[0]): tuple(r[2]) for r in chart["rows"] if r[2] is not None}
        self.assertEqual(shown, expected)
        # The history on the chart is the item's data, and the backtest window sits on it.
        status, history = a.api("GET", "/v1/datasets/m4/history?item=H1&limit=2000", acme)
        self.assertEqual(status, 200)
        on_chart = {int(r[0]): r[1][1] for r in chart["rows"] if r[1] is not None}
        self.assertEqual(on_chart, {int(datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")).timestamp() * 1000): p["value"]
                                    for p in history["points"]})
        backtest = [r for r in chart["rows"] if r[3] is not None]
        self.assertEqual(len(backtest), 48)
        self.assertTrue(all(int(r[0]) in on_chart for r in backtest))
        # The table beside the chart holds the same 48 steps; the chosen model is named.
        self.assertEqual(len(self.all("#forecast-table tbody tr")), 48)
        self.assertNotEqual(self.text("#chosen-model"), "—")
        self.assertTrue(self.text("#chosen-model"))
        # Hovering shows values with real timestamps in the legend.
        from selenium.webdriver.common.action_chains import ActionChains
        ActionChains(self.browser).move_to_element_with_offset(self.css("#chart canvas"), 200, 0).perform()
        wait_for("a hover legend with a timestamp", lambda: "20" in self.text("#legend") and ":" in self.text("#legend"), timeout=10)
        self.shot("03-forecast-view")
        # The CSV download is the API's CSV of the item's forecast.
        self.css("#download-csv").click()
        path = os.path.join(self.downloads, "m4-H1-forecast.csv")
        wait_for("the downloaded CSV", lambda: os.path.exists(path) and os.path.getsize(path) > 0, timeout=30)
        with open(path) as f:
            downloaded = f.read()
        self.assertEqual(downloaded, a.api("GET", "/v1/datasets/m4/forecast?item=H1", acme, accept="text/csv")[1])
        self.assertEqual(len(downloaded.splitlines()), 49)
        # Searching finds one item among the others, and picking it charts it.
        self.css("#item-search").send_keys("H2")
        wait_for("the search result", lambda: [b.get_attribute("data-item") for b in self.all("#items button")] == ["H2"], timeout=30)
        self.css("#items button[data-item=H2]").click()
        wait_for("H2's chart", lambda: self.text("#item-detail h2") == "Item H2", timeout=30)

        # The arrival's chain in the pipeline page, delivery included.
        self.go("#/pipeline")
        def chain():
            steps = [li.get_attribute("data-step") for li in self.all("#arrivals li.arrival:last-child ol.chain li")]
            return steps if "delivered" in steps else None
        steps = wait_for("the chain of the arrival", lambda: (self.go("#/pipeline"), time.sleep(1), chain())[2], timeout=300, every=1)
        for step in ("arrived", "imported", "trained", "forecast", "exported", "delivered"):
            self.assertIn(step, steps)
        self.assertEqual(steps[0], "arrived")
        self.assertLess(steps.index("imported"), steps.index("trained"))
        self.assertLess(steps.index("forecast"), steps.index("exported"))
        wait_for("the functions table", lambda: "ingest" in self.text("#functions-table"), timeout=30)
        self.shot("04-pipeline")

        # Redeliver a delivery: the receiver gets the same webhook again, and the attempts grow.
        exported = wait_for("a verified export webhook", lambda: [wid for wid, e in receiver.verified if e["type"] == "almanac.forecast.exported"], timeout=120)
        wid = exported[0]
        self.go("#/webhooks")
        button = wait_for("the deliveries", lambda: self.css("#deliveries-table button[data-redeliver]"), timeout=30)
        before = receiver.count(wid)
        button.click()
        wait_for("the redelivery", lambda: receiver.count(wid) == before + 1, timeout=120)
        wait_for("two attempts shown", lambda: (self.css("#deliveries-refresh").click(), time.sleep(0.5),
                                                 self.css("#deliveries-table [data-attempts]").get_attribute("data-attempts") == "2")[2], timeout=60)
        self.assertEqual(receiver.rejected, 0)
        self.shot("05-webhooks")

        # Later actuals through the browser: the monitor scores the forecast; the accuracy page shows it.
        self.go("#/datasets")
        wait_for("the upload form", lambda: self.css("#upload-file"), timeout=30)
        self.css("#upload-file").send_keys(os.path.join(SAMPLE, "m4-hourly-next.csv"))
        self.css("#upload-submit").click()
        wait_for("the second import", lambda: "accepted" in self.text("#upload-status"), timeout=300)
        def measured():
            self.go("#/datasets/m4/accuracy")
            return wait_for("the accuracy table", lambda: len(self.all("#accuracy-table tbody tr")) >= 1, timeout=10)
        wait_for("an accuracy measurement", measured, timeout=300, every=2)
        status, accuracy = a.api("GET", "/v1/datasets/m4/accuracy", acme)
        if any(m["breached"] for m in accuracy["items"]):
            # A breach starts a retrain: the page lists it and marks it on the chart.
            def retrain_marked():
                self.go("#/datasets/m4/accuracy")
                wait_for("the page", lambda: self.css("#accuracy-table"), timeout=10)
                return self.all("#retrains tbody tr") and self.all(".dygraph-annotation")
            wait_for("the retrain after the breach", retrain_marked, timeout=300, every=2)
            marks = sorted(e.text for e in self.all(".dygraph-annotation"))
            self.assertIn("B", marks)
            self.assertIn("R", marks)
        self.shot("06-accuracy")

        # A dead letter of acme's (an arrival that breaks its schema), redriven from the page.
        status, _ = a.api("POST", "/v1/events", acme, {"specversion": "1.0", "id": "console-bad", "source": "erp",
                                                       "type": "almanac.data.arrived", "data": {"dataset": "m4", "url": "x", "colour": "red"}},
                           content_type="application/cloudevents+json")
        self.assertEqual(status, 202)
        def letter():
            self.go("#/deadletters")
            return wait_for("the letters", lambda: self.css("#letters button[data-redrive]"), timeout=10)
        redrive = wait_for("the dead letter", letter, timeout=120, every=1)
        letter_id = redrive.get_attribute("data-redrive")
        self.assertIn("console-bad", self.text("#letters"))
        self.shot("07-dead-letters")
        redrive.click()
        wait_for("the redrive", lambda: a.api("GET", f"/v1/deadletters/{letter_id}", acme)[1].get("status") == "redriven", timeout=60)

        # Sign out: the form is back, and the old session no longer works.
        self.css("#sign-out").click()
        wait_for("the sign-in form", lambda: self.css("#token"), timeout=30)
        self.assertEqual(self.browser.execute_async_script(
            "const done = arguments[0]; fetch('/console/session', {credentials: 'same-origin'}).then(r => done(r.status));"), 401)
        old = urllib.request.Request(a.http + "/v1/datasets", headers={
            "Cookie": f"almanac_session={session['value']}",
            "X-Almanac-CSRF": hashlib.sha256(("almanac-console-csrf:" + session["value"]).encode()).hexdigest()})
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(old, timeout=30)
        self.assertEqual(refused.exception.code, 401)

        # globex sees none of acme's things.
        self.sign_in(globex, "globex")
        wait_for("globex's empty dataset list", lambda: self.css("#no-datasets"), timeout=30)
        self.go("#/datasets/m4")
        wait_for("the refusal", lambda: "tenant globex has no dataset m4" in self.text("#status"), timeout=30)
        self.go("#/pipeline")
        wait_for("globex's empty pipeline", lambda: "No data arrivals yet." in self.text("#arrivals"), timeout=30)
        self.assertNotIn("console-bad", self.text("#functions-table"))
        self.go("#/webhooks")
        wait_for("globex's webhooks", lambda: "No endpoints yet." in self.text("#view"), timeout=30)
        self.go("#/deadletters")
        wait_for("globex's dead letters", lambda: self.css("#no-letters"), timeout=30)
        self.assertNotIn("console-bad", self.text("#view"))
        self.shot("08-other-tenant")
        self.assertEqual(self.errors_in_console(), [])


if __name__ == "__main__":
    unittest.main()
