"""The train-deep function's pure parts: reading series onto their grid, holdout metrics,
and settings from ALMANAC_DEEP_OPTIONS (the database parts run in the Swift pipeline tests)."""
import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from almanac_deep.function import Refusal, holdout_metrics, predictor_writes, regular_series, training_options  # noqa: E402


class FunctionPartsTests(unittest.TestCase):
    def test_a_trained_predictor_is_handed_back_as_writes_for_the_sdks_transaction(self):
        class Net:
            members = [object(), object()]

            class cfg:  # noqa: N801 — the shape of NetworkConfig the writes read
                lookback = 24

            @staticmethod
            def to_bytes():
                return b"\x00npz\xff"

        series = [np.array([1, 2, 3, 4], float), np.array([9], float)]
        holdout = np.array([[[1, 2, 3], [2, 3, 4]], [[0, 0, 0], [0, 0, 0]]], float)
        writes = predictor_writes("acme", "sales", 3, "ev-1", "pd-ev-1", ["A", "B"], series, holdout, (0.1, 0.5, 0.9),
                                  [{"WAPE": 0.1}, {}], {"WAPE": 0.1}, Net)
        self.assertEqual([w.get("insert") or ("delete " + w["delete"]) for w in writes],
                         ["predictors", "predictor_items", "predictor_holdouts", "predictor_models"])
        predictor = writes[0]["rows"][0]
        self.assertEqual((predictor["id"], predictor["tenant"], predictor["dataset_version"], predictor["kind"]), ("pd-ev-1", "acme", 3, "deep"))
        self.assertEqual(predictor["metrics"], {"WAPE": 0.1})
        self.assertEqual([r["item_id"] for r in writes[1]["rows"]], ["A", "B"])
        self.assertIn("2 member(s), lookback 24", writes[1]["rows"][0]["method"])
        # Only an item longer than the horizon has a holdout: its last 2 values and [step][level] quantiles.
        self.assertEqual(writes[2]["rows"], [{"predictor_id": "pd-ev-1", "item_id": "A", "actual": [3.0, 4.0], "levels": [0.1, 0.5, 0.9],
                                              "quantiles": [[1.0, 2.0, 3.0], [2.0, 3.0, 4.0]]}])
        import base64
        self.assertEqual(base64.b64decode(writes[3]["rows"][0]["model"]["$base64"]), b"\x00npz\xff")
        self.assertTrue(all(w.get("on_conflict") == "nothing" for w in writes))

    def test_gaps_on_the_grid_become_zero(self):
        t = np.array([0, 3600, 3 * 3600, 4 * 3600], float)
        out = regular_series(t, np.array([1, 2, 4, 5], float), 3600)
        np.testing.assert_array_equal(out, [1, 2, 0, 4, 5])

    def test_an_irregular_grid_keeps_the_values_in_order(self):
        t = np.array([0, 31, 59, 90], float) * 86400  # months
        np.testing.assert_array_equal(regular_series(t, np.array([1, 2, 3, 4], float), 86400 * 7), [1, 2, 3, 4])

    def test_holdout_metrics_match_hand_computed_values(self):
        # One item, horizon 2: actual [10, 20]; quantiles (0.1, 0.5, 0.9) per step.
        series = [np.array([5, 5, 10, 20], np.float32)]
        holdout = np.array([[[8, 12, 14], [15, 18, 25]]], float)
        per_item, pooled = holdout_metrics(series, holdout, (0.1, 0.5, 0.9), 2)
        # WAPE of the median: (|10-12| + |20-18|) / 30
        self.assertAlmostEqual(pooled["WAPE"], 4 / 30)
        # Pinball sums over the steps: q0.1 (y−q = 2, 5): 0.1·2 + 0.1·5; q0.5 (−2, 2): 0.5·2 + 0.5·2;
        # q0.9 (−4, −5, over-forecasts): 0.1·4 + 0.1·5. wQL = 2 · sum / Σ|y|, averaged over levels.
        expected = np.mean([2 * (0.1 * 2 + 0.1 * 5) / 30, 2 * (0.5 * 2 + 0.5 * 2) / 30, 2 * (0.1 * 4 + 0.1 * 5) / 30])
        self.assertAlmostEqual(pooled["avg_wQL"], expected)
        self.assertEqual(per_item[0], pooled)

    def test_options_are_the_trainers_flags(self):
        opts = training_options("--width 16 --max-epochs 3 --members 2")
        self.assertEqual((opts.width, opts.max_epochs, opts.members, opts.layers), (16, 3, 2, 3))
        with self.assertRaises(Refusal) as e:
            training_options("--widht 16")  # a typo: refused, not ignored
        self.assertIn("ALMANAC_DEEP_OPTIONS", str(e.exception))


if __name__ == "__main__":
    unittest.main()
