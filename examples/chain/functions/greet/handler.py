"""A function in Python: reads one JSON request per line, answers one JSON line."""
import json
import sys

for line in sys.stdin:
    request = json.loads(line)
    event = request["event"]
    name = (event.get("data") or {}).get("name", "world")
    print(json.dumps({"log": f"greeting {name} (attempt {request['attempt']})"}), flush=True)
    print(json.dumps({"ok": True, "emit": [{"type": "demo.greeted", "data": {"name": name, "greeting": f"Hello, {name}!"}}]}), flush=True)
