"""Training the global forecaster: windows from every series, Adam, early stopping on a
validation window, and checkpoints that let a killed run resume where it was.

Each series is cut three ways (H = horizon, n = its length):
  - training targets end at or before n - 2H;
  - the validation window [n - 2H, n - H) decides early stopping;
  - the holdout window [n - H, n) is never seen in training: the backtest the champion
    selection compares with the statistical predictor's forecast of the same window.
The forecast itself reads the latest lookback window, [n - lookback, n).

An epoch is a fixed number of steps whose random windows come from a key derived from the
seed and the epoch number, so a run resumed from its checkpoint continues exactly as an
uninterrupted one would.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import network
from .network import NetworkConfig


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How long and how hard to train."""

    steps_per_epoch: int = 100
    batch: int = 256
    max_epochs: int = 40
    patience: int = 5
    learning_rate: float = 1e-3
    seed: int = 0

    def to_json(self) -> str:
        """The config as JSON (a checkpoint resumes only under the same config)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


class Panel:
    """Every series of a dataset in one padded matrix: `lookback` zeros in front of each
    series, then its values, then zeros; a mask marks the observed cells."""

    def __init__(self, series: list[np.ndarray], related: list[np.ndarray] | None, lookback: int, horizon: int):
        self.lookback, self.horizon = lookback, horizon
        self.lengths = np.array([len(s) for s in series], np.int32)
        width = lookback + int(self.lengths.max()) + horizon
        self.values = np.zeros((len(series), width), np.float32)
        self.mask = np.zeros_like(self.values)
        k = 0 if not related else related[0].shape[0]
        self.related = np.zeros((len(series), k, width), np.float32)
        for i, s in enumerate(series):
            self.values[i, lookback:lookback + len(s)] = s
            self.mask[i, lookback:lookback + len(s)] = 1.0
            if k:
                self.related[i, :, lookback:lookback + len(s)] = related[i]

    def windows(self, rows, origins):
        """Scaled inputs and targets for forecast origins (the index of the first forecast
        step in each series): window, mask, related [B, K, L], target [B, H], and the
        (location, scale) [B] each window was standardised by."""
        return _windows(jnp.asarray(self.values), jnp.asarray(self.mask), jnp.asarray(self.related),
                        jnp.asarray(rows), jnp.asarray(origins), self.lookback, self.horizon)

    def training_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Series that have training windows, and the latest origin each allows (n - 3H)."""
        last = self.lengths - 3 * self.horizon
        first = min(self.horizon, self.lookback)
        rows = np.nonzero(last >= first)[0]
        return rows.astype(np.int32), last[rows].astype(np.int32)


def _standardiser(x, m):
    """Each window's location (mean of its observed values) and scale (their standard
    deviation; the mean absolute value when flat; 1 when zero): the network sees and
    predicts values relative to the window, so one set of weights fits every level."""
    n = jnp.maximum(jnp.sum(m, axis=-1), 1.0)
    loc = jnp.sum(x * m, axis=-1) / n
    std = jnp.sqrt(jnp.sum(((x - loc[:, None]) * m) ** 2, axis=-1) / n)
    level = jnp.sum(jnp.abs(x) * m, axis=-1) / n
    scale = jnp.where(std > 1e-6 * jnp.maximum(level, 1e-12), std, jnp.where(level > 0, level, 1.0))
    return loc, scale


def _window_batch(values, mask, related, rows, origins, lookback, horizon):
    offsets = jnp.arange(lookback + horizon)
    idx = origins[:, None] + offsets[None, :]  # padded columns of values origin - lookback … origin + H - 1
    v = values[rows[:, None], idx]
    m = mask[rows[:, None], idx]
    r = related[rows[:, None, None], jnp.arange(related.shape[1])[None, :, None], idx[:, None, :]]
    x, xm, y = v[:, :lookback], m[:, :lookback], v[:, lookback:]
    loc, scale = _standardiser(x, xm)
    rx = r[..., :lookback]
    rscale = jnp.where(jnp.max(jnp.abs(rx), axis=-1, keepdims=True) > 0, jnp.max(jnp.abs(rx), axis=-1, keepdims=True), 1.0)
    return (x - loc[:, None]) / scale[:, None] * xm, xm, rx / rscale, (y - loc[:, None]) / scale[:, None], (loc, scale)


_windows = jax.jit(_window_batch, static_argnums=(5, 6))


def _adam(params, grads, m, v, step, lr):
    b1, b2, eps = 0.9, 0.999, 1e-8
    m = jax.tree_util.tree_map(lambda a, g: b1 * a + (1 - b1) * g, m, grads)
    v = jax.tree_util.tree_map(lambda a, g: b2 * a + (1 - b2) * g * g, v, grads)
    t = step + 1.0
    params = jax.tree_util.tree_map(
        lambda p, a, b: p - lr * (a / (1 - b1 ** t)) / (jnp.sqrt(b / (1 - b2 ** t)) + eps), params, m, v)
    return params, m, v


def _make_epoch(cfg: NetworkConfig, tc: TrainConfig, panel: Panel):
    rows, last = panel.training_rows()
    rows_j, last_j = jnp.asarray(rows), jnp.asarray(last)
    first = min(panel.horizon, panel.lookback)
    values, mask, related = jnp.asarray(panel.values), jnp.asarray(panel.mask), jnp.asarray(panel.related)

    def loss_fn(params, key):
        k1, k2 = jax.random.split(key)
        pick = jax.random.randint(k1, (tc.batch,), 0, rows_j.shape[0])
        span = last_j[pick] - first + 1
        origin = first + (jax.random.uniform(k2, (tc.batch,)) * span).astype(jnp.int32)
        x, xm, rx, y, _ = _window_batch(values, mask, related, rows_j[pick], origin,
                                        panel.lookback, panel.horizon)
        return network.loss(params, cfg, x, xm, rx, y)

    grad = jax.value_and_grad(loss_fn)

    @jax.jit
    def epoch(params, m, v, step, key, lr):
        def body(carry, k):
            p, m, v, s = carry
            loss, g = grad(p, k)
            p, m, v = _adam(p, g, m, v, s, lr)
            return (p, m, v, s + 1.0), loss
        (params, m, v, step), losses = jax.lax.scan(body, (params, m, v, step), jax.random.split(key, tc.steps_per_epoch))
        return params, m, v, step, jnp.mean(losses)

    return epoch


def predict(params, cfg: NetworkConfig, panel: Panel, origins: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Quantile forecasts [series, horizon, levels] in the data's units from each series'
    origin (index of the first forecast step)."""
    fn = jax.jit(lambda p, x, xm, rx: network.quantiles(p, cfg, x, xm, rx, jax.random.PRNGKey(7)))
    out = []
    for start in range(0, len(origins), chunk):
        rows = np.arange(start, min(start + chunk, len(origins)), dtype=np.int32)
        x, xm, rx, _, (loc, scale) = panel.windows(rows, origins[rows])
        out.append(np.asarray(fn(params, x, xm, rx)) * np.asarray(scale)[:, None, None] + np.asarray(loc)[:, None, None])
    return np.concatenate(out, axis=0)


def validation_loss(params, cfg: NetworkConfig, panel: Panel) -> float:
    """The training loss (scaled) on each series' validation window [n - 2H, n - H)."""
    origins = panel.lengths - 2 * panel.horizon
    rows = np.nonzero(origins >= 1)[0].astype(np.int32)
    x, xm, rx, y, _ = panel.windows(rows, origins[rows])
    return float(network.loss(params, cfg, x, xm, rx, y))


class Checkpoint:
    """A run's state after its latest epoch, written atomically (temporary file, then rename)."""

    def __init__(self, path: str | None, identity: str):
        self.path, self.identity = path, identity

    def save(self, state: dict) -> None:
        """Writes the state: params, Adam moments, best params, counters, history."""
        if not self.path:
            return
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        arrays = {}
        for name in ("params", "m", "v", "best"):
            for i, leaf in enumerate(jax.tree_util.tree_leaves(state[name])):
                arrays[f"{name}_{i}"] = np.asarray(leaf)
        meta = {k: state[k] for k in ("epoch", "step", "best_val", "bad", "history")}
        meta["identity"] = self.identity
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def load(self, template) -> dict | None:
        """The saved state, or None when there is none or it belongs to another run."""
        if not self.path or not os.path.exists(self.path):
            return None
        with np.load(self.path) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta.get("identity") != self.identity:
                return None
            treedef = jax.tree_util.tree_structure(template)
            n = treedef.num_leaves
            state = dict(meta)
            for name in ("params", "m", "v", "best"):
                state[name] = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(z[f"{name}_{i}"]) for i in range(n)])
        return state


def train(panel: Panel, cfg: NetworkConfig, tc: TrainConfig, checkpoint: str | None = None,
          progress: Callable[[dict], None] | None = None):
    """Trains until the validation loss has not improved for `patience` epochs (or
    `max_epochs`), resuming from the checkpoint when one of the same run exists.
    Returns the best parameters and the epoch history."""
    key = jax.random.PRNGKey(tc.seed)
    params = network.init(jax.random.fold_in(key, 1), cfg)
    identity = cfg.to_json() + tc.to_json() + f"|{panel.values.shape}|{float(panel.values.sum()):.6g}"
    ck = Checkpoint(checkpoint, identity)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    state = ck.load(params)
    resumed = state is not None
    if state is None:
        state = {"params": params, "m": zeros, "v": zeros, "best": params, "epoch": 0, "step": 0.0,
                 "best_val": float("inf"), "bad": 0, "history": []}
    if progress and resumed:
        progress({"resumed_from_epoch": state["epoch"]})
    if not panel.training_rows()[0].size:
        raise ValueError(f"no series is long enough to train on: each needs at least "
                         f"{3 * panel.horizon + min(panel.horizon, panel.lookback)} values (3 × horizon + a window)")
    epoch_fn = _make_epoch(cfg, tc, panel)
    while state["epoch"] < tc.max_epochs and state["bad"] < tc.patience:
        started = time.perf_counter()
        e = state["epoch"] + 1
        p, m, v, step, loss = epoch_fn(state["params"], state["m"], state["v"], jnp.float32(state["step"]),
                                      jax.random.fold_in(key, 1000 + e), jnp.float32(tc.learning_rate))
        val = validation_loss(p, cfg, panel)
        improved = val < state["best_val"]
        state.update(params=p, m=m, v=v, step=float(step), epoch=e,
                     best=p if improved else state["best"], best_val=min(val, state["best_val"]),
                     bad=0 if improved else state["bad"] + 1)
        record = {"epoch": e, "loss": round(float(loss), 6), "validation": round(val, 6),
                  "seconds": round(time.perf_counter() - started, 3)}
        state["history"].append(record)
        ck.save(state)
        if progress:
            progress(record)
    return state["best"], state["history"]
