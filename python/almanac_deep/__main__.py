"""`python3 -m almanac_deep fit|predict`: the deep global forecaster on JSON-lines series.

Input, one series per line: {"id": "H1", "values": [...], "related": [[...], ...]}
("related", optional: related series on the same grid, same length as "values").
Output, one line per series: {"id": "H1", "levels": [...], "forecast": [[q per level] per step]}
and, from `fit`, "holdout": the same for the last horizon of the series, forecast from
the data before it (the backtest window). Progress goes to stderr as JSON lines.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def _read_series(path: str):
    ids, values, related = [], [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                v = np.asarray(row["values"], np.float32)
            except (ValueError, KeyError, TypeError) as e:
                raise SystemExit(f"{path}:{n}: not a series line ({e}); expected {{\"id\": …, \"values\": [numbers]}}")
            if not np.all(np.isfinite(v)):
                raise SystemExit(f"{path}:{n}: series {row.get('id')} has non-finite values; fill gaps before training")
            ids.append(str(row["id"]))
            values.append(v)
            r = row.get("related")
            related.append(np.asarray(r, np.float32).reshape(-1, len(v)) if r else None)
    if not ids:
        raise SystemExit(f"{path}: no series")
    if any(r is None for r in related):
        if any(r is not None for r in related):
            raise SystemExit(f"{path}: some series have related values and some do not; give all or none")
        related = None
    return ids, values, related


def write_forecasts(path: str, ids, levels, forecast, holdout=None):
    """One JSON line per series: its levels, forecast [step][level] and holdout forecast."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for i, item in enumerate(ids):
            row = {"id": item, "levels": list(levels), "forecast": np.round(forecast[i], 6).tolist()}
            if holdout is not None:
                row["holdout"] = np.round(holdout[i], 6).tolist()
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


def _progress(record: dict) -> None:
    sys.stderr.write(json.dumps({"progress": record}) + "\n")
    sys.stderr.flush()


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The network's size and the training's length (also ALMANAC_DEEP_OPTIONS for train-deep)."""
    parser.add_argument("--lookback", type=int)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--members", type=int, default=1, help="networks trained from successive seeds, averaged")
    parser.add_argument("--architecture", choices=["nbeats", "deepar"], default="nbeats",
                        help="nbeats (the default) or the DeepAR-style GRU it was compared with")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="almanac_deep", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="train on the series and forecast them")
    fit.add_argument("--series", required=True)
    fit.add_argument("--horizon", type=int, required=True)
    fit.add_argument("--levels", default="0.1,0.5,0.9")
    fit.add_argument("--season", type=int, default=1)
    add_training_arguments(fit)
    fit.add_argument("--checkpoint", help="checkpoint file: written each epoch, resumed from when it exists")
    fit.add_argument("--model", help="write the trained predictor here (.npz)")
    fit.add_argument("--output", required=True, help="forecasts and holdout forecasts (JSON lines)")
    pred = sub.add_parser("predict", help="forecast the series with a saved predictor")
    pred.add_argument("--model", required=True)
    pred.add_argument("--series", required=True)
    pred.add_argument("--output", required=True)
    stored = sub.add_parser("forecast-stored", help="forecast a pipeline dataset with its stored deep predictor (DATABASE_URL)")
    stored.add_argument("--predictor", required=True)
    stored.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    if args.command == "forecast-stored":
        from .function import forecast_stored

        url = os.environ.get("DATABASE_URL")
        if not url:
            raise SystemExit("DATABASE_URL is not set")
        return forecast_stored(url, args.predictor, args.output)

    import jax  # after argument errors, which should not wait for JAX to load

    from .model import DeepPredictor, default_lookback
    from .network import NetworkConfig
    from .training import TrainConfig

    ids, values, related = _read_series(args.series)
    started = time.perf_counter()
    if args.command == "predict":
        with open(args.model, "rb") as f:
            predictor = DeepPredictor.from_bytes(f.read())
        write_forecasts(args.output, ids, predictor.cfg.levels, predictor.forecast(values, related))
        return 0
    levels = tuple(sorted(float(x) for x in args.levels.split(",")))
    if any(not 0 < q < 1 for q in levels):
        raise SystemExit(f"--levels must be between 0 and 1, got {args.levels}")
    cfg = NetworkConfig(lookback=args.lookback or default_lookback(args.horizon, args.season), horizon=args.horizon,
                        levels=levels, related=0 if related is None else related[0].shape[0],
                        width=args.width, layers=args.layers, blocks=args.blocks, architecture=args.architecture)
    tc = TrainConfig(steps_per_epoch=args.steps_per_epoch, batch=args.batch, max_epochs=args.max_epochs,
                     patience=args.patience, learning_rate=args.learning_rate, seed=args.seed)
    _progress({"device": str(jax.devices()[0]), "series": len(ids), "lookback": cfg.lookback})
    try:
        predictor = DeepPredictor.fit(values, related, cfg, tc, members=args.members, checkpoint=args.checkpoint, progress=_progress)
    except ValueError as e:
        raise SystemExit(str(e))
    if args.model:
        with open(args.model + ".tmp", "wb") as f:
            f.write(predictor.to_bytes())
        os.replace(args.model + ".tmp", args.model)
    write_forecasts(args.output, ids, levels, predictor.forecast(values, related), predictor.forecast(values, related, holdout=True))
    _progress({"done": True, "epochs": len(predictor.history), "seconds": round(time.perf_counter() - started, 2)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
