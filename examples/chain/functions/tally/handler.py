"""Second link of the demo chain."""
import json
import sys

for line in sys.stdin:
    event = json.loads(line)["event"]
    greeting = event["data"]["greeting"]
    letters = sum(c.isalpha() for c in greeting)
    print(json.dumps({"ok": True, "emit": [{"type": "demo.tallied", "data": {"greeting": greeting, "letters": letters}}]}), flush=True)
