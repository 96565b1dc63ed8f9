import AlmanacForecast
import Foundation

/// `almanac forecast --models deep|champion`: the deep global model alone, or champion
/// selection between it and the statistical AutoML on each series' last horizon.
struct DeepForecastRun {
    var horizon: Int
    var levels: [Double]
    var seasons: [Int]?
    var metric: SelectionMetric
    var options: String

    /// Forecasts every series; with `champion`, also runs AutoML and keeps the statistical,
    /// deep or mean forecasts, whichever scored best on the holdout windows.
    func forecasts(_ series: [TimeSeries], champion: Bool, automl: AutoMLModel) async throws -> [Forecast] {
        let deep = try DeepForecaster(options: options.split(separator: " ").map(String.init))
        let seasons = self.seasons ?? series.first?.frequency.defaultSeasons ?? [1]
        let fit = try deep.fit(series, horizon: horizon, levels: levels, season: seasons.first ?? 1) { line in
            FileHandle.standardError.write(Data("deep: \(line)\n".utf8))
        }
        guard champion else { return fit.forecasts }
        let choices = await ForecastEngine.map(series) { s in
            automl.choose(s.values, horizon: horizon, seasons: self.seasons ?? s.frequency.defaultSeasons, levels: levels)
        }
        let scored = series.indices.filter { choices[$0].holdout != nil && series[$0].values.count > horizon }
        let choice = Champion.choose(
            actuals: scored.map { Array(series[$0].values.suffix(horizon)) },
            insample: scored.map { Array(series[$0].values.dropLast(horizon)) }, seasons: seasons,
            statistical: scored.map { choices[$0].holdout! }, deep: scored.map { fit.holdouts[$0] }, levels: levels, metric: metric)
        let report = PredictorKind.allCases.map { "\($0.rawValue) \(String(format: "%.4f", choice.scores[$0] ?? Double.nan))" }.joined(separator: ", ")
        FileHandle.standardError.write(Data("champion by \(metric.rawValue) on \(scored.count) holdout windows: \(choice.kind.rawValue) (\(report))\n".utf8))
        return series.indices.map { Champion.combine(choice.kind, statistical: choices[$0].forecast, deep: fit.forecasts[$0]) }
    }
}
