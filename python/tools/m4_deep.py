"""M4 helpers for timing the deep trainer outside the Swift CLI (GPU against CPU):

  python3 m4_deep.py series DATA/hourly-train.csv OUT.jsonl
      the series as the trainer's JSON lines;
  python3 m4_deep.py score hourly FORECAST.jsonl DATA/hourly-test.csv SCORE.py
      the forecast's p2.5/p50/p97.5 scored by ../shared/tools/m4_score.py (one JSON line).
"""
import csv
import json
import subprocess
import sys
import tempfile


def series(train_csv: str, out: str) -> None:
    values: dict[str, list[float]] = {}
    with open(train_csv, newline="") as f:
        for row in csv.DictReader(f):
            values.setdefault(row["item_id"], []).append(float(row["target_value"]))
    with open(out, "w") as f:
        for item, v in values.items():
            f.write(json.dumps({"id": item, "values": v}) + "\n")


def score(frequency: str, forecast_jsonl: str, test_csv: str, scorer: str) -> None:
    stamps: dict[str, list[str]] = {}
    with open(test_csv, newline="") as f:
        for row in csv.DictReader(f):
            stamps.setdefault(row["item_id"], []).append(row["timestamp"])
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as out, open(forecast_jsonl) as f:
        out.write("item_id,timestamp,p2.5,p50,p97.5\n")
        for line in f:
            r = json.loads(line)
            cols = [r["levels"].index(q) for q in (0.025, 0.5, 0.975)]
            for h, q in enumerate(r["forecast"]):
                out.write(f"{r['id']},{stamps[r['id']][h]}," + ",".join(str(q[c]) for c in cols) + "\n")
    result = subprocess.run([sys.executable, scorer, frequency, out.name, "--point-col", "p50", "--lo-col", "p2.5",
                             "--hi-col", "p97.5", "--json"], capture_output=True, text=True, check=True)
    print(json.dumps({k: round(v, 4) for k, v in json.loads(result.stdout).items() if isinstance(v, float)}))


if __name__ == "__main__":
    if sys.argv[1] == "series":
        series(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "score":
        score(*sys.argv[2:6])
    else:
        sys.exit(__doc__)
