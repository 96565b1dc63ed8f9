import AlmanacForecast
import Foundation
import Testing

@Suite struct MetricsTests {
    // Hand-computed: actual [100, 200, 0, 50], forecast [110, 180, 10, 50].
    let y = [100.0, 200, 0, 50]
    let f = [110.0, 180, 10, 50]

    @Test func pointMetricsMatchHandComputedValues() {
        // sMAPE terms: 200·10/210, 200·20/380, 200·10/10, 0 → (9.5238 + 10.5263 + 200 + 0) / 4
        #expect(abs(Metrics.smape(actual: y, forecast: f) - (2000.0 / 210 + 4000.0 / 380 + 200) / 4) < 1e-12)
        // MAPE skips the zero actual: (10 + 10 + 0) / 3
        #expect(abs(Metrics.mape(actual: y, forecast: f) - 20.0 / 3) < 1e-12)
        // RMSE: sqrt((100 + 400 + 100 + 0) / 4)
        #expect(abs(Metrics.rmse(actual: y, forecast: f) - (600.0 / 4).squareRoot()) < 1e-12)
        // WAPE: 40 / 350
        #expect(abs(Metrics.wape(actual: y, forecast: f) - 40.0 / 350) < 1e-12)
    }

    @Test func scaledMetricsUseTheSeasonalInsampleScale() {
        let insample = [1.0, 2, 3, 5, 8, 13]
        // m = 2: |3−1|, |5−2|, |8−3|, |13−5| → mean 4.5
        #expect(Metrics.seasonalScale(insample: insample, season: 2) == 4.5)
        // MASE: mean |e| = 10 over scale 4.5
        #expect(abs(Metrics.mase(actual: y, forecast: f, insample: insample, season: 2) - 10 / 4.5) < 1e-12)
        // MSIS, α = 0.05 (penalty 2/α = 40 per unit outside): widths are all 20; y = 100 is 5
        // below L = 105 (220), y = 200 is 10 above U = 190 (420), the others inside (20, 20).
        let lower = [105.0, 170, -10, 40], upper = [125.0, 190, 10, 60]
        let expected: Double = 680.0 / 4 / 4.5
        #expect(abs(Metrics.msis(actual: y, lower: lower, upper: upper, insample: insample, season: 2) - expected) < 1e-12)
        #expect(Metrics.coverage(actual: y, lower: lower, upper: upper) == 0.5)
    }

    @Test func weightedQuantileLoss() {
        // q = 0.9: under-forecasts cost 0.9 per unit, over-forecasts 0.1.
        // errors: y−f = −10 (over: 1), 20 (under: 18), −10 (over: 1), 0 → 2·20 / 350
        #expect(abs(Metrics.wql(actual: y, quantile: f, q: 0.9) - 40.0 / 350) < 1e-12)
    }

    @Test func normalQuantileKnownValues() {
        #expect(abs(normalQuantile(0.975) - 1.959963984540054) < 1e-12)
        #expect(abs(normalQuantile(0.5)) < 1e-15)
        #expect(abs(normalQuantile(0.1) + 1.2815515655446004) < 1e-12)
        #expect(abs(normalQuantile(0.001) + 3.090232306167813) < 1e-10)
    }
}

@Suite struct ModelTests {
    @Test func seasonalNaiveRepeatsTheLastSeasonWithGrowingIntervals() {
        let x = [1.0, 2, 3, 1, 2, 3, 1, 2, 4]
        let fc = SeasonalNaiveModel().forecast(x, horizon: 5, season: 3, levels: [0.1, 0.5, 0.9])
        #expect(fc.mean == [1, 2, 4, 1, 2])
        #expect(fc.quantiles[0.5] == fc.mean)
        // Seasonal differences: 0,0,0,0,0,1 → σ = sqrt(1/6); step 4 is in the second season: ×√2.
        let sigma = (1.0 / 6).squareRoot()
        #expect(abs(fc.quantiles[0.9]![0] - (1 + 1.2815515655446004 * sigma)) < 1e-9)
        #expect(abs(fc.quantiles[0.9]![3] - (1 + 1.2815515655446004 * sigma * 2.0.squareRoot())) < 1e-9)
    }

    @Test func naiveIsARandomWalk() {
        let fc = NaiveModel().forecast([3, 5, 4, 6], horizon: 3, season: 12, levels: [0.5])
        #expect(fc.mean == [6, 6, 6])
    }

    @Test func columnNamesArePercentages() {
        #expect([0.1, 0.5, 0.9, 0.025, 0.975].map(ForecastEngine.columnName) == ["p10", "p50", "p90", "p2.5", "p97.5"])
    }
}

@Suite struct SeriesReaderTests {
    @Test func readsCRLFInfersFrequencyAndFillsGaps() throws {
        let csv = "item_id,timestamp,target_value\r\nA,2026-01-01 00:00:00,1\r\nA,2026-01-01 01:00:00,2\r\nA,2026-01-01 03:00:00,4\r\nB,2026-01-05,7\r\nB,2026-01-12,8\r\n"
        let series = try SeriesReader.read(csv: csv, fill: .previous)
        #expect(series.map(\.id) == ["A", "B"])
        #expect(series[0].frequency == .hourly)
        #expect(series[0].values == [1, 2, 2, 4])
        #expect(series[1].frequency == .weekly)
        #expect(try SeriesReader.read(csv: csv, fill: .zero)[0].values == [1, 2, 0, 4])
        #expect(try SeriesReader.read(csv: csv, fill: .value(9))[0].values == [1, 2, 9, 4])
        #expect(try SeriesReader.read(csv: csv, fill: .mean)[0].values == [1, 2, 7.0 / 3, 4])
        #expect(series[0].timestamp(at: 4) == SeriesReader.parseTimestamp("2026-01-01 04:00:00"))
        let monthly = try SeriesReader.read(csv: "item_id,timestamp,target_value\nM,2026-01-31,1\nM,2026-02-28,2\nM,2026-03-31,3\n", frequency: .monthly)
        #expect(monthly[0].frequency == .monthly && monthly[0].values == [1, 2, 3])
    }

    @Test("bad input is refused with the line and the item", arguments: [
        ("", "the input is empty"),
        ("id,time,value\nA,2026-01-01,1\n", "line 1: the header must name item_id, timestamp and target_value"),
        ("item_id,timestamp,target_value\n", "no rows"),
        ("item_id,timestamp,target_value\nA,2026-01-01\n", "line 2: expected 3 comma-separated fields, got 2"),
        ("item_id,timestamp,target_value\n,2026-01-01,1\n", "line 2: item_id is empty"),
        ("item_id,timestamp,target_value\nA,01/02/2026,1\n", "line 2, item A: timestamp \"01/02/2026\" is not"),
        ("item_id,timestamp,target_value\nA,2026-02-30,1\n", "line 2, item A: timestamp"),
        ("item_id,timestamp,target_value\nA,2026-01-01,abc\n", "line 2, item A: target_value \"abc\" is not a number"),
        ("item_id,timestamp,target_value\nA,2026-01-01,nan\n", "line 2, item A: target_value nan is not finite"),
        ("item_id,timestamp,target_value\nA,2026-01-01,inf\n", "target_value inf is not finite"),
        ("item_id,timestamp,target_value\nA,2026-01-02,1\nA,2026-01-01,2\n", "line 3, item A: timestamps must increase"),
        ("item_id,timestamp,target_value\nA,2026-01-01,1\nA,2026-01-01,2\n", "line 3, item A: duplicate timestamp (also on line 2)"),
        ("item_id,timestamp,target_value\nA,2026-01-01 00:00:00,1\nA,2026-01-01 01:00:00,2\nA,2026-01-01 02:00:00,2\nA,2026-01-01 02:30:00,2\n",
         "line 5, item A: timestamp is off the hourly grid"),
        ("item_id,timestamp,target_value\nA,2026-01-01 00:00:00,1\nA,2026-01-01 00:07:00,2\n", "item A: cannot infer the frequency"),
    ])
    func badInput(_ input: (String, String)) {
        #expect {
            _ = try SeriesReader.read(csv: input.0)
        } throws: { error in
            "\(error)".contains(input.1)
        }
    }
}

@Suite struct BacktestTests {
    @Test func cutoffsFollowTheOffsetAndStepBackByTheHorizon() {
        #expect(BacktestPlan(windows: 3, horizon: 4).cutoffs(count: 20) == [16, 12, 8])
        #expect(BacktestPlan(windows: 2, horizon: 4, offset: 6).cutoffs(count: 20) == [14, 10])
        #expect(BacktestPlan(windows: 5, horizon: 4).cutoffs(count: 10) == [6, 2], "windows without history are dropped")
    }

    @Test func pooledScoresMatchTheMetricsByHand() async {
        // Naive on 1, 2, …, 10 with horizon 2 and two windows: cut-offs 8 and 6.
        // Window 1 forecasts 8, 8 for actuals 9, 10; window 2 forecasts 6, 6 for 7, 8.
        let s = TimeSeries(id: "a", start: Date(timeIntervalSince1970: 0), frequency: .daily, values: (1...10).map(Double.init))
        let (score, windows) = await ForecastEngine.backtest([s], model: NaiveModel(), plan: BacktestPlan(windows: 2, horizon: 2),
                                                             levels: [0.1, 0.5, 0.9], seasons: [1])
        #expect(windows == 2)
        // |errors| 1, 2, 1, 2 over |actuals| 9 + 10 + 7 + 8.
        #expect(abs(score.value("WAPE")! - 6.0 / 34) < 1e-12)
        #expect(abs(score.value("RMSE")! - (10.0 / 4).squareRoot()) < 1e-12)
        // In-sample scale with m = 1 is 1, so MASE is the mean |error| of each window (1.5), averaged.
        #expect(abs(score.value("MASE")! - 1.5) < 1e-12)
        // wQL at the median is WAPE.
        #expect(abs(score.value("wQL[p50]")! - 6.0 / 34) < 1e-12)
        let cover = score.value("coverage")!
        #expect(cover >= 0 && cover <= 1)
    }
}

/// Conformal widening from backtest windows, against values worked out by hand.
@Suite struct ConformalTests {
    /// One window of 20 steps: mean 0, the 0.1 and 0.9 quantiles at −1 and 1, actual values 0.1…2.0.
    let window: (actual: [Double], forecast: Forecast) = (
        (1...20).map { Double($0) / 10 },
        Forecast(mean: [Double](repeating: 0, count: 20), quantiles: [0.1: [Double](repeating: -1, count: 20), 0.5: [Double](repeating: 0, count: 20),
                                                                    0.9: [Double](repeating: 1, count: 20)]))

    @Test func aLevelThatMissedIsStretchedToTheConformalQuantileOfItsRatios() {
        // Upper ratios are the actual values; the finite-sample rank is ⌈21 · 0.9⌉ = 19 → 1.9.
        // Below the mean nothing was missed: the 0.1 level stays (stretch 1). 0.5 is never touched.
        let s = Conformal.stretches(windows: [window], levels: [0.1, 0.5, 0.9])
        #expect(s[0.9] == 1.9 && s[0.1] == 1 && s[0.5] == nil, "\(s)")
        let f = Forecast(mean: [10, 20], quantiles: [0.1: [8, 15], 0.5: [10, 21], 0.9: [12, 24]])
        let c = Conformal.calibrated(f, stretches: s)
        #expect(c.quantiles[0.9] == [10 + 1.9 * 2, 20 + 1.9 * 4] && c.quantiles[0.1] == [8, 15] && c.quantiles[0.5] == [10, 21] && c.mean == f.mean)
    }

    @Test func tooFewPointsOrNoMissLeaveTheForecastAsItIs() {
        let short = (actual: Array(window.actual.prefix(7)), forecast: window.forecast)
        #expect(Conformal.stretches(windows: [short], levels: [0.9]).isEmpty, "7 points are too few")
        let covered = (actual: [Double](repeating: 0.5, count: 20), forecast: window.forecast)
        let s = Conformal.stretches(windows: [covered], levels: [0.1, 0.9])
        #expect(s[0.9] == 1 && s[0.1] == 1)
        let f = Forecast(mean: [1], quantiles: [0.9: [2]])
        #expect(Conformal.calibrated(f, stretches: s) == f)
    }

    @Test func aStretchIsCappedAndQuantilesNeverCross() {
        // Actual values 100 times past the 0.9 quantile: capped at the maximum stretch.
        let far = (actual: [Double](repeating: 100, count: 20), forecast: window.forecast)
        #expect(Conformal.stretches(windows: [far], levels: [0.9])[0.9] == Conformal.maximumStretch)
        // Stretching 0.75 past 0.9 is put back in order.
        let f = Forecast(mean: [0], quantiles: [0.75: [1], 0.9: [2]])
        let c = Conformal.calibrated(f, stretches: [0.75: 3])
        #expect(c.quantiles[0.75] == [2] && c.quantiles[0.9] == [3])
    }
}
