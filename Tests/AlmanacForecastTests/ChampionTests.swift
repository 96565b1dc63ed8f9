import AlmanacForecast
import Foundation
import Testing

/// Champion selection on constructed holdouts, and the deep model through its Python process.
@Suite struct ChampionTests {
    let levels = [0.1, 0.5, 0.9]
    let actuals = [[100.0, 110, 120, 130], [50.0, 40, 60, 50], [10.0, 12, 14, 16]]
    let insample = [[90.0, 95, 100, 96, 98], [45.0, 55, 50, 48, 52], [8.0, 9, 10, 9, 11]]

    /// A forecast `bias` × the actual, with a band of ±`width` × the actual.
    func forecasts(bias: Double, width: Double = 0.05) -> [Forecast] {
        actuals.map { a in
            let mid = a.map { $0 * bias }
            return Forecast(mean: mid, quantiles: [0.1: zip(mid, a).map { $0 - width * $1 }, 0.5: mid, 0.9: zip(mid, a).map { $0 + width * $1 }])
        }
    }

    @Test func theMoreAccuratePredictorWins() {
        let good = forecasts(bias: 1.01), poor = forecasts(bias: 1.3)
        let deepWins = Champion.choose(actuals: actuals, insample: insample, seasons: [1], statistical: poor, deep: good, levels: levels)
        #expect(deepWins.kind == .deep)
        #expect(deepWins.scores[.deep]! < deepWins.scores[.ensemble]!)
        #expect(deepWins.scores[.ensemble]! < deepWins.scores[.statistical]!)
        let statWins = Champion.choose(actuals: actuals, insample: insample, seasons: [1], statistical: good, deep: poor, levels: levels)
        #expect(statWins.kind == .statistical)
    }

    @Test func oppositeErrorsMakeTheEnsembleWin() {
        // One over-forecasts by 10%, the other under by 10%: their mean is right.
        let c = Champion.choose(actuals: actuals, insample: insample, seasons: [1],
                                statistical: forecasts(bias: 1.1), deep: forecasts(bias: 0.9), levels: levels)
        #expect(c.kind == .ensemble)
        #expect(c.backtests[.ensemble]!.value("WAPE")! < 1e-9)
        let combined = Champion.combine(.ensemble, statistical: forecasts(bias: 1.1)[0], deep: forecasts(bias: 0.9)[0])
        for (f, a) in zip(combined.quantiles[0.5]!, actuals[0]) { #expect(abs(f - a) < 1e-9) }
    }

    @Test func aTieGoesToTheStatisticalPredictor() {
        let same = forecasts(bias: 1.05)
        #expect(Champion.choose(actuals: actuals, insample: insample, seasons: [1], statistical: same, deep: same, levels: levels).kind == .statistical)
    }

    @Test func automlReportsItsHoldoutForecast() {
        let values: [Double] = (0..<120).map { (t: Int) -> Double in
            let angle = Double(t) * 2 * Double.pi / 12
            return 100 + 10 * sin(angle)
        }
        let choice = AutoMLModel().choose(values, horizon: 12, seasons: [12], levels: levels)
        let holdout = try! #require(choice.holdout)
        #expect(holdout.mean.count == 12)
        // The holdout forecast is made without the last 12 values: for a clean seasonal
        // series it reproduces them closely.
        #expect(Metrics.wape(actual: Array(values.suffix(12)), forecast: holdout.quantiles[0.5]!) < 0.05)
    }

    @Test func theDeepModelForecastsThroughItsPythonProcess() throws {
        let start = Date(timeIntervalSince1970: 0)
        let series = (0..<6).map { i in
            TimeSeries(id: "s\(i)", start: start, frequency: .hourly,
                       values: (0..<96).map { (t: Int) -> Double in
                           let angle = Double(t + i) * 2 * Double.pi / 24
                           return Double(50 * (i + 1)) * (1 + 0.3 * sin(angle))
                       })
        }
        let deep = try DeepForecaster(options: ["--width", "16", "--layers", "1", "--blocks", "1", "--steps-per-epoch", "5",
                                                "--batch", "16", "--max-epochs", "2", "--lookback", "24"])
        let records = RecordedLines()
        let fit = try deep.fit(series, horizon: 8, levels: levels, season: 24) { records.append($0) }
        #expect(fit.forecasts.count == 6 && fit.holdouts.count == 6)
        for f in fit.forecasts + fit.holdouts {
            #expect(f.mean.count == 8)
            for h in 0..<8 { #expect(f.quantiles[0.1]![h] <= f.quantiles[0.5]![h] && f.quantiles[0.5]![h] <= f.quantiles[0.9]![h]) }
        }
        #expect(records.lines.contains { $0.contains("\"epoch\": 2") }, "progress lines: \(records.lines)")
    }

    @Test func aMissingPackageIsAClearError() {
        #expect(throws: ForecastInputError.self) { try DeepForecaster(environment: ["ALMANAC_DEEP_PATH": "/nonexistent"]) }
    }
}

/// Lines collected from another thread.
final class RecordedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    func append(_ line: String) { lock.withLock { stored.append(line) } }
    var lines: [String] { lock.withLock { stored } }
}
