"""The train-deep function: on `almanac.dataset.imported` (a dataset whose `models` is deep or
champion and that has no deep predictor yet) and on `almanac.accuracy.breached`, trains the
deep global model on the dataset's latest version and stores a deep predictor — the network,
per-item holdout forecasts and backtest metrics — then emits `almanac.predictor.trained`.

It runs under the runtime's exec adapter (JSON lines on stdin/stdout, see
ExecFunctionHandler.swift). The launcher gives it a GPU slot when one is free
(`gpu: preferred`, as CUDA_VISIBLE_DEVICES), and JAX uses it; otherwise it trains on CPU.
Each epoch is checkpointed under $ALMANAC_ROOT/.almanac/checkpoints, so a killed instance's
redelivered event resumes there. The predictor's id derives from the event id and its
insert is idempotent, so a redelivery never stores two.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shlex
import sys
import time

import numpy as np

SEASONS = {"hourly": 24, "daily": 7, "weekly": 52, "monthly": 12, "quarterly": 4, "yearly": 1}
STEPS = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400}


class Refusal(Exception):
    """A request that cannot succeed as sent (not retried)."""


def say(obj) -> None:
    """One protocol line on stdout."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(text: str, level: str = "info") -> None:
    say({"log": text, "level": level})


def grid_index(times: np.ndarray, step: float | None) -> np.ndarray:
    """Each observation's position on its item's grid: gaps leave holes (filled with zero,
    the target's middle fill, as the statistical trainer reads it); when the grid is
    irregular (months) or unknown, the observations in time order."""
    if step and len(times) > 1:
        offsets = (times - times[0]) / step
        index = np.rint(offsets).astype(np.int64)
        if np.all(np.abs(offsets - index) < 1e-6) and np.all(np.diff(index) > 0):
            return index
    return np.arange(len(times))


def on_grid(index: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values placed at their grid positions (the last axis), zeros in the gaps."""
    out = np.zeros(values.shape[:-1] + (int(index[-1]) + 1,), np.float32)
    out[..., index] = values
    return out


def regular_series(times: np.ndarray, values: np.ndarray, step: float | None) -> np.ndarray:
    """An item's values on its grid (see grid_index)."""
    return on_grid(grid_index(times, step), values)


def related_number(value) -> float:
    """A related column's value as a number (missing, non-numeric or non-finite: 0)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0
    return v if np.isfinite(v) else 0.0


def training_options(text: str):
    """The trainer's settings from ALMANAC_DEEP_OPTIONS (the flags of `almanac_deep fit`)."""
    from .__main__ import add_training_arguments

    parser = argparse.ArgumentParser(prog="ALMANAC_DEEP_OPTIONS", add_help=False)
    add_training_arguments(parser)
    try:
        return parser.parse_args(shlex.split(text))
    except SystemExit:
        raise Refusal(f"ALMANAC_DEEP_OPTIONS={text!r} is not valid: use the flags of `python3 -m almanac_deep fit`")


class TrainDeep:
    """The handler, with its database connection and settings."""

    def __init__(self, database_url: str, root: str, options: str):
        import psycopg

        self.psycopg = psycopg
        self.url, self.root, self.options = database_url, root, options
        self.db = psycopg.connect(database_url, autocommit=True, application_name="almanac-train-deep")

    def handle(self, event: dict) -> tuple[list[dict], list[dict]]:
        """Trains when due; returns the events to emit and the writes to commit with them
        (the SDK applies both in its transaction with the event's processed mark)."""
        data = event.get("data") or {}
        tenant = event.get("tenant") or "default"
        name = data.get("dataset") or event.get("subject") or ""
        row = self.db.execute(
            "SELECT horizon, frequency, quantiles, models FROM datasets WHERE tenant = %s AND name = %s", (tenant, name)).fetchone()
        if row is None:
            raise Refusal(f"dataset {name!r} does not exist for tenant {tenant}")
        horizon, frequency, quantiles, models = row
        if models == "statistical":
            log(f"dataset {name} uses the statistical models only (datasets create --models deep|champion adds this one)")
            return [], []
        predictor_id = "pd-" + event["id"]
        version = self.db.execute("SELECT coalesce(max(version), 0) FROM dataset_versions WHERE tenant = %s AND dataset = %s",
                                  (tenant, name)).fetchone()[0]
        mine = self.db.execute("SELECT dataset_version, items, metrics FROM predictors WHERE id = %s", (predictor_id,)).fetchone()
        if mine is not None:  # stored before the writes were handed back to the SDK's transaction
            return [self.trained_event(name, predictor_id, mine[0], mine[1], mine[2], {"reason": "redelivered"})], []
        latest = self.db.execute(
            "SELECT max(dataset_version) FROM predictors WHERE tenant = %s AND dataset = %s AND kind = 'deep'", (tenant, name)).fetchone()[0]
        if event.get("type") == "almanac.dataset.imported" and latest is not None:
            log(f"dataset {name} has a deep predictor; the forecast function forecasts with it")
            return [], []
        if latest is not None and latest >= version:
            log(f"a deep predictor for version {version} of {name} exists; request superseded")
            return [], []
        ids, series, related, names = self.load(tenant, name, frequency)
        if not ids:
            raise Refusal(f"dataset {name} has no observations")
        trained, writes = self.train(event, tenant, name, version, horizon, frequency, quantiles, ids, series, related, names, predictor_id)
        return [trained], writes

    def load(self, tenant: str, name: str, frequency: str | None, names: list[str] | None = None):
        """The dataset's items, their series on the grid, and their related series
        ([columns, steps] per item, or None when the dataset has none) with the column names.
        `names` fixes the related columns (a trained network's); by default, every column seen."""
        rows = self.db.execute(
            "SELECT item_id, extract(epoch FROM ts)::float8, value, related FROM dataset_observations(%s, %s) "
            "ORDER BY item_id, ts", (tenant, name)).fetchall()
        if names is None:
            names = sorted({k for r in rows if r[3] for k in r[3]})
        by_item: dict[str, list] = {}
        for item, t, v, rel in rows:
            by_item.setdefault(item, []).append((t, v, [related_number((rel or {}).get(k)) for k in names]))
        step = STEPS.get(frequency or "")
        if frequency is None and by_item:
            diffs = np.concatenate([np.diff([o[0] for o in obs]) for obs in by_item.values() if len(obs) > 1] or [np.zeros(0)])
            step = float(np.min(diffs)) if diffs.size and np.min(diffs) < 28 * 86400 else None
        ids, series, related = list(by_item), [], []
        for item in ids:
            obs = by_item[item]
            index = grid_index(np.array([o[0] for o in obs]), step)
            series.append(on_grid(index, np.array([o[1] for o in obs], np.float64)))
            related.append(on_grid(index, np.array([o[2] for o in obs], np.float64).T.reshape(len(names), len(obs))))
        return ids, series, (related if names else None), names

    def train(self, event, tenant, name, version, horizon, frequency, quantiles, ids, series, related, names,
              predictor_id) -> tuple[dict, list[dict]]:
        import jax

        from .model import DeepPredictor, default_lookback
        from .network import NetworkConfig
        from .training import TrainConfig

        opts = training_options(self.options)
        levels = tuple(sorted(set(float(q) for q in quantiles) | {0.5}))
        season = SEASONS.get(frequency or "", 1)
        cfg = NetworkConfig(lookback=opts.lookback or default_lookback(horizon, season), horizon=horizon, levels=levels,
                            related=len(names), width=opts.width, layers=opts.layers, blocks=opts.blocks)
        tc = TrainConfig(steps_per_epoch=opts.steps_per_epoch, batch=opts.batch, max_epochs=opts.max_epochs,
                         patience=opts.patience, learning_rate=opts.learning_rate, seed=opts.seed)
        device = str(jax.devices()[0])
        key = hashlib.sha256(f"{tenant}/{name}/{event['id']}".encode()).hexdigest()[:24]
        checkpoint = os.path.join(self.root, ".almanac", "checkpoints", key)
        started = time.perf_counter()
        log(f"training the deep model for {name} v{version}: {len(ids)} series, horizon {horizon}, lookback {cfg.lookback}, "
            f"related series {names or 'none'}, on {device}")

        def progress(record):
            # The SDK keeps it for `almanac status` (function_progress) and logs it.
            say({"progress": {"dataset": name, "device": device, "members": opts.members, "max_epochs": tc.max_epochs, **record}})

        progress({"member": 1, "epoch": 0})

        try:
            predictor = DeepPredictor.fit(series, related, cfg, tc, members=opts.members, checkpoint=checkpoint, progress=progress)
        except ValueError as e:
            raise Refusal(f"dataset {name}: {e}")
        predictor.related_names = names
        holdout = predictor.forecast(series, related, holdout=True)
        per_item, metrics = holdout_metrics(series, holdout, levels, horizon)
        writes = predictor_writes(tenant, name, version, event["id"], predictor_id, ids, series, holdout, levels, per_item,
                                  metrics, predictor)
        for k in range(opts.members):
            if os.path.exists(f"{checkpoint}.{k}"):
                os.remove(f"{checkpoint}.{k}")
        extra = {"seconds": round(time.perf_counter() - started, 1), "epochs": len(predictor.history), "device": device,
                 "related": names,
                 "reason": "accuracy breached" if event.get("type") == "almanac.accuracy.breached" else "first data"}
        log(f"deep predictor {predictor_id} trained: holdout WAPE {metrics.get('WAPE')}")
        return self.trained_event(name, predictor_id, version, len(ids), metrics, extra), writes

    @staticmethod
    def trained_event(name, predictor_id, version, items, metrics, extra) -> dict:
        data = {"dataset": name, "predictor_id": predictor_id, "dataset_version": version, "items": items,
                "metrics": metrics if isinstance(metrics, dict) else json.loads(metrics), "kind": "deep", **extra}
        return {"type": "almanac.predictor.trained", "subject": name, "data": data}


def predictor_writes(tenant, name, version, event_id, predictor_id, ids, series, holdout, levels, per_item, metrics,
                     predictor) -> list[dict]:
    """The rows that store a trained deep predictor, as the exec adapter's `write` entries:
    the predictor, its items, their holdout forecasts and the network (bytea, base64). The SDK
    commits them with the event (and clears the attempt's progress in the same transaction)."""
    h = holdout.shape[1]
    method = f"deep global (N-BEATS-style; {len(predictor.members)} member(s), lookback {predictor.cfg.lookback})"
    return [
        {"insert": "predictors", "on_conflict": "nothing", "rows": [{
            "id": predictor_id, "tenant": tenant, "dataset": name, "dataset_version": int(version), "kind": "deep",
            "trigger_event": event_id, "items": len(ids), "metrics": metrics}]},
        {"insert": "predictor_items", "on_conflict": "nothing", "rows": [{
            "predictor_id": predictor_id, "item_id": item, "members": ["deep"], "combination": "mean", "method": method,
            "metrics": per_item[i]} for i, item in enumerate(ids)]},
        {"insert": "predictor_holdouts", "on_conflict": "nothing", "rows": [{
            "predictor_id": predictor_id, "item_id": item, "actual": [float(x) for x in series[i][-h:]], "levels": list(levels),
            "quantiles": holdout[i].astype(float).tolist()} for i, item in enumerate(ids) if len(series[i]) > h]},
        {"insert": "predictor_models", "on_conflict": "nothing", "rows": [{
            "predictor_id": predictor_id, "format": "almanac-deep-npz-1",
            "model": {"$base64": base64.b64encode(predictor.to_bytes()).decode("ascii")}}]},
    ]


def forecast_stored(database_url: str, predictor_id: str, output: str) -> int:
    """Forecasts a dataset from its latest data with a stored deep predictor, reading the
    data as training did (grid, related columns); one JSON line per item in `output`."""
    from .__main__ import write_forecasts
    from .model import DeepPredictor

    handler = TrainDeep(database_url, ".", "")
    row = handler.db.execute("""
        SELECT p.tenant, p.dataset, d.frequency, m.model FROM predictors p JOIN datasets d ON d.tenant = p.tenant AND d.name = p.dataset
        JOIN predictor_models m ON m.predictor_id = p.id WHERE p.id = %s
        """, (predictor_id,)).fetchone()
    if row is None:
        raise SystemExit(f"deep predictor {predictor_id} or its network is not stored")
    tenant, name, frequency, model = row
    predictor = DeepPredictor.from_bytes(bytes(model))
    ids, series, related, _ = handler.load(tenant, name, frequency, names=predictor.related_names)
    write_forecasts(output, ids, predictor.cfg.levels, predictor.forecast(series, related))
    return 0


def holdout_metrics(series, holdout, levels, horizon):
    """WAPE of the median and mean weighted quantile loss on each item's holdout window,
    per item and pooled (the statistical predictor's `WAPE` and `avg_wQL`)."""
    m = levels.index(0.5)
    per_item, abs_err, abs_act, ql = [], 0.0, 0.0, np.zeros(len(levels))
    for s, q in zip(series, holdout):
        if len(s) <= horizon:
            per_item.append({})
            continue
        y = np.asarray(s[-horizon:], np.float64)
        diff = y[:, None] - q
        loss = np.sum(np.maximum(np.asarray(levels) * diff, (np.asarray(levels) - 1) * diff), axis=0)
        denom = np.sum(np.abs(y))
        item = {}
        if denom > 0:
            item = {"WAPE": float(np.sum(np.abs(diff[:, m])) / denom), "avg_wQL": float(np.mean(2 * loss / denom))}
        per_item.append(item)
        abs_err += float(np.sum(np.abs(diff[:, m])))
        abs_act += float(denom)
        ql += loss
    pooled = {"WAPE": abs_err / abs_act, "avg_wQL": float(np.mean(2 * ql / abs_act))} if abs_act > 0 else {}
    return per_item, pooled


def die_with_parent() -> None:
    """Asks Linux to kill this process when its parent (the function instance) dies, so a
    killed instance leaves no training behind to race the retry for the checkpoint."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def main() -> int:
    """The exec adapter's loop: one request line in, progress and one answer line out."""
    die_with_parent()
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.stderr.write("DATABASE_URL is not set; the launcher sets it (see .almanac/endpoints.env after `almanac up`)\n")
        return 2
    handler = TrainDeep(url, os.environ.get("ALMANAC_ROOT", ".almanac"), os.environ.get("ALMANAC_DEEP_OPTIONS", ""))
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            emit, writes = handler.handle(request["event"])
            say({"ok": True, "emit": emit, "write": writes})
        except Refusal as e:
            say({"ok": False, "error": str(e), "retriable": False})
        except Exception as e:  # noqa: BLE001 — any other failure is reported and retried
            say({"ok": False, "error": f"{type(e).__name__}: {e}", "retriable": True})
    return 0
