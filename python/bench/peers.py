#!/usr/bin/env python3
"""Almanac next to statsforecast on an M-competition folder (train.csv, test.csv, meta.json).

Runs `almanac forecast` (defaults: AutoML) and, in the same run, statsforecast's AutoETS,
AutoARIMA and AutoTheta (each timed on its own) and the mean of the three; scores the
medians with the shared scorer (sMAPE, MASE as the published tables compute them) and the
80 % and 95 % intervals by coverage (the share of test values inside). Prints one table per
folder and, last, one JSON line with every figure.

Usage: peers.py ALMANAC_BINARY SCORE_PY DATASET_DIR [DATASET_DIR ...] [--jobs 2] [--almanac-args "..."]
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

PEERS = ("AutoETS", "AutoARIMA", "AutoTheta")
FREQUENCY = {"YS": "yearly", "QS": "quarterly", "MS": "monthly", "W": "weekly", "D": "daily", "h": "hourly", "H": "hourly"}


def load_scorer(path):
    spec = importlib.util.spec_from_file_location("shared_score", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_almanac(binary, folder, meta, work, extra):
    """Almanac's forecasts as item_id, timestamp, point, lo/hi 80 and 95, and its wall time."""
    out = os.path.join(work, "almanac.csv")
    frequency = FREQUENCY.get(meta["frequency"])
    args = [binary, "forecast", "--input", os.path.join(folder, "train.csv"), "--horizon", str(meta["horizon"]),
            "--quantiles", "0.025,0.1,0.5,0.9,0.975", "--output", out]
    if frequency:
        args += ["--frequency", frequency]
    args += extra
    start = time.time()
    done = subprocess.run(args, capture_output=True, text=True)
    seconds = time.time() - start
    if done.returncode != 0:
        sys.exit(f"almanac forecast failed on {folder}:\n{done.stderr[-4000:]}")
    f = pd.read_csv(out)
    return pd.DataFrame({"item_id": f.item_id, "timestamp": pd.to_datetime(f.timestamp), "point": f.p50,
                         "lo80": f["p10"], "hi80": f["p90"], "lo95": f["p2.5"], "hi95": f["p97.5"]}), seconds


def run_peers(train, meta, jobs):
    """Each statsforecast model's forecasts (same columns as Almanac's) and wall time."""
    from statsforecast import StatsForecast
    from statsforecast import models as sf

    df = train.rename(columns={"item_id": "unique_id", "timestamp": "ds", "target_value": "y"})
    m = int(meta["seasonal_period"])
    out = {}
    for name in PEERS:
        model = getattr(sf, name)(season_length=m)
        start = time.time()
        f = StatsForecast(models=[model], freq=meta["frequency"], n_jobs=jobs).forecast(df=df, h=int(meta["horizon"]), level=[80, 95])
        seconds = time.time() - start
        f = f.reset_index() if "unique_id" not in f.columns else f
        out[name] = (pd.DataFrame({"item_id": f.unique_id, "timestamp": pd.to_datetime(f.ds), "point": f[name],
                                   "lo80": f[f"{name}-lo-80"], "hi80": f[f"{name}-hi-80"],
                                   "lo95": f[f"{name}-lo-95"], "hi95": f[f"{name}-hi-95"]}), seconds)
    return out


def coverage(test, f, level):
    d = test.merge(f, on=["item_id", "timestamp"], how="left")
    inside = (d.target_value >= d[f"lo{level}"]) & (d.target_value <= d[f"hi{level}"])
    return float(inside.mean())


def bench(folder, binary, scorer, jobs, extra):
    meta, train, test = scorer.load(folder)
    with tempfile.TemporaryDirectory() as work:
        almanac, almanac_seconds = run_almanac(binary, folder, meta, work, extra)
    peers = run_peers(train[["item_id", "timestamp", "target_value"]], meta, jobs)
    methods = {"almanac": (almanac, almanac_seconds), **peers}
    keys = ["item_id", "timestamp"]
    mean = peers[PEERS[0]][0][keys].copy()
    for column in ("point", "lo80", "hi80", "lo95", "hi95"):
        mean[column] = np.mean([p[0].merge(mean[keys], on=keys)[column].to_numpy() for p in peers.values()], axis=0)
    methods["mean of the three"] = (mean, sum(p[1] for p in peers.values()))
    points = test[keys].copy()
    for name, (f, _) in methods.items():
        points = points.merge(f[keys + ["point"]].rename(columns={"point": name}), on=keys, how="left")
    scores = scorer.score(meta, train, test, points, mase_scale=meta.get("published_mase_scale", "train")).set_index("method")
    rows = []
    for name, (f, seconds) in methods.items():
        rows.append({"method": name, "smape": round(float(scores.loc[name, "sMAPE"]), 3), "mase": round(float(scores.loc[name, "MASE"]), 3),
                     "coverage80": round(coverage(test, f, 80), 3), "coverage95": round(coverage(test, f, 95), 3),
                     "seconds": round(seconds, 2), "series": int(scores.loc[name, "n_series"])})
    return meta, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("almanac")
    ap.add_argument("score_py")
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--almanac-args", default="", help="more flags for almanac forecast, e.g. \"--models theta\"")
    a = ap.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    scorer = load_scorer(a.score_py)
    summary = {}
    for folder in a.datasets:
        meta, rows = bench(folder, os.path.abspath(a.almanac), scorer, a.jobs, a.almanac_args.split())
        name = os.path.basename(os.path.normpath(folder))
        print(f"\n{meta['name']}: {meta['n_series']} series, h {meta['horizon']}, m {meta['seasonal_period']}")
        print(f"{'method':<20} {'sMAPE':>8} {'MASE':>7} {'cover 80':>9} {'cover 95':>9} {'seconds':>8}")
        for r in rows:
            print(f"{r['method']:<20} {r['smape']:>8.3f} {r['mase']:>7.3f} {r['coverage80']:>9.3f} {r['coverage95']:>9.3f} {r['seconds']:>8.2f}")
        ours = rows[0]
        beaten = [r["method"] for r in rows[1:] if not (ours["smape"] < r["smape"] and ours["mase"] < r["mase"])]
        print("almanac lower on both sMAPE and MASE than every peer" if not beaten else "almanac not lower on both than: " + ", ".join(beaten))
        summary[name] = {"methods": rows, "almanac_beats_all": not beaten}
        sys.stdout.flush()
    print(json.dumps(summary, separators=(",", ":")))


if __name__ == "__main__":
    main()
