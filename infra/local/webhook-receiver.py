#!/usr/bin/env python3
"""A local webhook receiver for the demo: verifies each delivery's Standard Webhooks
signature (HMAC-SHA256 over id.timestamp.body, keyed by the secret after whsec_) and
prints one line per delivery; each verified body is also written to DIR/<webhook-id>.json.

usage: webhook-receiver.py PORT_FILE DIR SECRET_FILE
  Listens on a free loopback port, writes it to PORT_FILE, reads the secret from
  SECRET_FILE on each request (it is created after the endpoint is added)."""
import base64, hashlib, hmac, http.server, json, os, sys, time

port_file, out_dir, secret_file = sys.argv[1:4]
os.makedirs(out_dir, exist_ok=True)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        wid, ts, sig = (self.headers.get(h, "") for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
        try:
            secret = open(secret_file).read().strip()
            key = base64.b64decode(secret.removeprefix("whsec_"))
        except (OSError, ValueError):
            key = b""
        mac = base64.b64encode(hmac.new(key, f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
        fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300
        ok = fresh and any(hmac.compare_digest(f"v1,{mac}", s) for s in sig.split())
        event = json.loads(body) if ok else {}
        print(f"webhook {'VERIFIED' if ok else 'REJECTED'} {wid} {event.get('type', '?')} "
              f"{json.dumps(event.get('data', {}))[:160]}", flush=True)
        if ok:
            with open(os.path.join(out_dir, wid + ".json"), "wb") as f:
                f.write(body)
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(port_file, "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
