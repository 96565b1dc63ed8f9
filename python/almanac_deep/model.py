"""A trained deep predictor: fit on a dataset's series, saved and loaded as one file, and
asked for forecasts (latest window) and holdout forecasts (the backtest window)."""
from __future__ import annotations

import dataclasses
import io
import json

import jax
import jax.numpy as jnp
import numpy as np

from . import network, training
from .network import NetworkConfig
from .training import Panel, TrainConfig


def default_lookback(horizon: int, season: int) -> int:
    """Lookback window: a week of hours for hourly data, else the larger of 3 horizons and
    2 seasons, capped at 4 seasons."""
    if season == 24:
        return 7 * 24
    return max(3 * horizon, min(2 * season, 4 * max(season, 1)))


class DeepPredictor:
    """Network config plus the trained parameters of each ensemble member (the same network
    trained from different seeds; their quantiles are averaged, which keeps them ordered)."""

    def __init__(self, cfg: NetworkConfig, members: list, history: list[dict], related_names: list[str] | None = None):
        self.cfg, self.members, self.history = cfg, members, history
        # The related columns the network reads, in order (cfg.related of them).
        self.related_names = related_names or []

    @staticmethod
    def fit(series: list[np.ndarray], related: list[np.ndarray] | None, cfg: NetworkConfig, tc: TrainConfig,
            members: int = 1, checkpoint: str | None = None, progress=None) -> "DeepPredictor":
        """Trains `members` networks on every series (see training.train), seeds
        tc.seed, tc.seed + 1, …; each member checkpoints to its own file."""
        panel = Panel(series, related, cfg.lookback, cfg.horizon)
        trained, history = [], []
        for k in range(members):
            def report(record, k=k):
                if progress:
                    progress({"member": k + 1, "members": members, **record})
            params, h = training.train(panel, cfg, dataclasses.replace(tc, seed=tc.seed + k),
                                       checkpoint=f"{checkpoint}.{k}" if checkpoint else None, progress=report)
            trained.append(params)
            history += [{"member": k + 1, **r} for r in h]
        return DeepPredictor(cfg, trained, history)

    def forecast(self, series: list[np.ndarray], related: list[np.ndarray] | None, holdout: bool = False) -> np.ndarray:
        """Quantiles [series, horizon, levels] from the end of each series, or (holdout) from
        horizon steps before its end, the window the backtest scores."""
        panel = Panel(series, related, self.cfg.lookback, self.cfg.horizon)
        origins = np.maximum(panel.lengths - (self.cfg.horizon if holdout else 0), 0)
        return np.mean([training.predict(p, self.cfg, panel, origins) for p in self.members], axis=0)

    def to_bytes(self) -> bytes:
        """The predictor as an .npz file's bytes."""
        buf = io.BytesIO()
        leaves = {f"p_{k}_{i}": np.asarray(x) for k, params in enumerate(self.members)
                  for i, x in enumerate(jax.tree_util.tree_leaves(params))}
        meta = json.dumps({"config": json.loads(self.cfg.to_json()), "members": len(self.members),
                           "history": self.history, "related_names": self.related_names}).encode()
        np.savez(buf, meta=np.frombuffer(meta, np.uint8), **leaves)
        return buf.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> "DeepPredictor":
        """A predictor read back from `to_bytes`."""
        with np.load(io.BytesIO(data)) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            cfg = NetworkConfig.from_json(json.dumps(meta["config"]))
            treedef = jax.tree_util.tree_structure(network.init(jax.random.PRNGKey(0), cfg))
            members = [jax.tree_util.tree_unflatten(treedef, [jnp.asarray(z[f"p_{k}_{i}"]) for i in range(treedef.num_leaves)])
                       for k in range(meta["members"])]
        return DeepPredictor(cfg, members, meta["history"], meta.get("related_names"))
