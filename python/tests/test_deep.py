"""The deep trainer on CPU with a tiny network on small data: it learns, its forecasts have
the right shape and ordered quantiles, a killed run resumes from its checkpoint and ends as
an uninterrupted run does, and a saved predictor forecasts as the one in memory."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
sys.path.insert(0, PACKAGE_ROOT)

from almanac_deep.model import DeepPredictor  # noqa: E402
from almanac_deep.network import NetworkConfig  # noqa: E402
from almanac_deep.training import TrainConfig  # noqa: E402

LEVELS = (0.1, 0.5, 0.9)
TINY = dict(width=32, layers=2, blocks=2)


def open_lines(path):
    """The file's lines (closed after reading)."""
    with open(path, encoding="utf-8") as f:
        return f.readlines()


def seasonal_series(n_series=12, length=160, season=12, seed=0):
    """Series with a level, a trend, a season and noise, each its own scale."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    out = []
    for i in range(n_series):
        level = rng.uniform(10, 1000)
        s = level * (1 + 0.3 * np.sin(2 * np.pi * (t + i) / season) + 0.001 * t) + rng.normal(0, 0.02 * level, length)
        out.append(s.astype(np.float32))
    return out


class DeepTrainerTests(unittest.TestCase):
    def test_trains_and_its_loss_falls(self):
        series = seasonal_series()
        cfg = NetworkConfig(lookback=24, horizon=6, levels=LEVELS, **TINY)
        p = DeepPredictor.fit(series, None, cfg, TrainConfig(steps_per_epoch=30, batch=64, max_epochs=8, patience=8))
        losses = [r["loss"] for r in p.history]
        vals = [r["validation"] for r in p.history]
        self.assertEqual(len(losses), 8)
        self.assertLess(losses[-1], 0.6 * losses[0], f"training loss did not fall: {losses}")
        self.assertLess(min(vals), 0.7 * vals[0], f"validation loss did not fall: {vals}")

    def test_forecasts_have_the_right_shape_and_quantiles_never_cross(self):
        series = seasonal_series(n_series=5, length=90)
        cfg = NetworkConfig(lookback=24, horizon=6, levels=(0.025, 0.1, 0.5, 0.9, 0.975), **TINY)
        p = DeepPredictor.fit(series, None, cfg, TrainConfig(steps_per_epoch=10, batch=32, max_epochs=2))
        for holdout in (False, True):
            q = p.forecast(series, None, holdout=holdout)
            self.assertEqual(q.shape, (5, 6, 5))
            self.assertTrue(np.all(np.isfinite(q)))
            self.assertTrue(np.all(np.diff(q, axis=-1) >= 0), "quantiles cross")
        # A series shorter than the lookback still gets a forecast (padded, masked).
        short = [s[:10] for s in series]
        self.assertEqual(p.forecast(short, None).shape, (5, 6, 5))

    def test_forecasts_are_near_the_data(self):
        series = seasonal_series()
        cfg = NetworkConfig(lookback=24, horizon=6, levels=LEVELS, **TINY)
        p = DeepPredictor.fit(series, None, cfg, TrainConfig(steps_per_epoch=40, batch=64, max_epochs=10, patience=10))
        q = p.forecast(series, None, holdout=True)
        actual = np.stack([s[-6:] for s in series])
        wape = np.abs(q[:, :, 1] - actual).sum() / np.abs(actual).sum()
        self.assertLess(wape, 0.1, f"holdout WAPE {wape:.3f}")

    def test_the_deepar_alternative_learns_and_samples_ordered_quantiles(self):
        series = seasonal_series(n_series=6, length=100)
        cfg = NetworkConfig(lookback=24, horizon=6, levels=LEVELS, width=16, architecture="deepar")
        p = DeepPredictor.fit(series, None, cfg, TrainConfig(steps_per_epoch=20, batch=32, max_epochs=4, patience=4))
        losses = [r["loss"] for r in p.history]
        self.assertLess(losses[-1], losses[0], f"DeepAR's likelihood loss did not fall: {losses}")
        q = p.forecast(series, None)
        self.assertEqual(q.shape, (6, 6, 3))
        self.assertTrue(np.all(np.diff(q, axis=-1) >= 0), "sampled quantiles cross")

    def test_related_series_are_read(self):
        series = seasonal_series(n_series=6, length=80)
        related = [np.stack([np.roll(s, -3), np.ones_like(s)]) for s in series]
        cfg = NetworkConfig(lookback=24, horizon=6, levels=LEVELS, related=2, **TINY)
        p = DeepPredictor.fit(series, related, cfg, TrainConfig(steps_per_epoch=10, batch=32, max_epochs=2))
        self.assertEqual(p.forecast(series, related).shape, (6, 6, 3))
        self.assertEqual(cfg.inputs, 24 * 4)

    def test_a_saved_predictor_forecasts_as_the_trained_one(self):
        series = seasonal_series(n_series=4, length=80)
        cfg = NetworkConfig(lookback=24, horizon=6, levels=LEVELS, **TINY)
        p = DeepPredictor.fit(series, None, cfg, TrainConfig(steps_per_epoch=10, batch=32, max_epochs=2), members=2)
        q = DeepPredictor.from_bytes(p.to_bytes()).forecast(series, None)
        np.testing.assert_allclose(q, p.forecast(series, None), rtol=1e-6)

    def test_a_killed_run_resumes_from_its_checkpoint(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "series.jsonl")
            with open(path, "w") as f:
                for i, s in enumerate(seasonal_series(n_series=8, length=120)):
                    f.write(json.dumps({"id": f"s{i}", "values": s.tolist()}) + "\n")
            args = [sys.executable, "-m", "almanac_deep", "fit", "--series", path, "--horizon", "6", "--season", "12",
                    "--width", "32", "--layers", "2", "--blocks", "2", "--steps-per-epoch", "200", "--batch", "32",
                    "--max-epochs", "6", "--patience", "100"]
            env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT, JAX_PLATFORMS="cpu")

            def run(name, checkpoint, kill_after_epoch=None):
                out = os.path.join(d, name + ".jsonl")
                cmd = args + ["--output", out] + (["--checkpoint", checkpoint] if checkpoint else [])
                proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
                seen = []
                for line in proc.stderr:
                    if line.startswith("{"):
                        rec = json.loads(line)["progress"]
                        seen.append(rec)
                        if kill_after_epoch and rec.get("epoch") == kill_after_epoch:
                            os.kill(proc.pid, signal.SIGKILL)
                            break
                proc.stderr.close()
                proc.wait()
                return proc.returncode, seen, out

            ck = os.path.join(d, "run.ckpt")
            code, seen, _ = run("killed", ck, kill_after_epoch=2)
            self.assertEqual(code, -signal.SIGKILL)
            self.assertTrue(os.path.exists(ck + ".0"), "no checkpoint was written before the kill")
            code, resumed, out_resumed = run("resumed", ck)
            self.assertEqual(code, 0)
            start = next(r for r in resumed if "resumed_from_epoch" in r)
            self.assertGreaterEqual(start["resumed_from_epoch"], 2)
            epochs = [r["epoch"] for r in resumed if "epoch" in r]
            self.assertEqual(epochs, list(range(start["resumed_from_epoch"] + 1, 7)), "the resumed run repeated or skipped epochs")
            code, _, out_whole = run("whole", None)
            self.assertEqual(code, 0)
            a = [json.loads(line)["forecast"] for line in open_lines(out_resumed)]
            b = [json.loads(line)["forecast"] for line in open_lines(out_whole)]
            np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-4, atol=1e-3)


if __name__ == "__main__":
    unittest.main()
