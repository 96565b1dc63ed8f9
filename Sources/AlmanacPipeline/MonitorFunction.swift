import AlmanacCore
import AlmanacForecast
import AlmanacPostgres
import AlmanacFunctions
import Foundation

/// The monitor function: on `almanac.dataset.imported`, measures the live forecast (the newest
/// one made before this version) on the actuals that now overlap it — WAPE of the p50, MASE
/// and mean weighted quantile loss — and stores the measurement. When the WAPE passes the
/// dataset's bound (an absolute `retrain_wape`, else `retrain_factor` × the predictor's
/// backtest WAPE), it emits `almanac.accuracy.breached`, at most once per forecast.
public struct MonitorFunction: EventHandler {
    /// Makes the handler.
    public init() {}

    /// Measures the live forecast against new actuals.
    public func handle(_ imported: DatasetImported, event: CloudEvent, context: FunctionContext) async throws {
        let db = try context.database
        let name = imported.dataset
        guard let dataset = try await DatasetStore.find(tenant: event.tenant, name: name, in: db) else {
            throw FunctionError("dataset \(name) does not exist for tenant \(event.tenant)", retriable: false)
        }
        let version = imported.version
        guard let f = try await ForecastStore.live(tenant: dataset.tenant, dataset: dataset.name, before: version, in: db) else {
            context.logger.info("no earlier forecast to measure", metadata: ["dataset": "\(name)"])
            return
        }
        let forecastID = f.id, levels = f.levels
        let (score, points) = try await measure(forecastID: forecastID, levels: levels, dataset: dataset, db: db)
        guard points > 0 else {
            context.logger.info("new actuals do not overlap the live forecast", metadata: ["dataset": "\(name)", "forecast": "\(forecastID)"])
            return
        }
        let wape = score.value("WAPE") ?? .nan, mase = score.value("MASE") ?? .nan, wql = score.value("avg_wQL") ?? .nan
        let bound = dataset.retrainWAPE ?? (f.backtestWAPE ?? .infinity) * dataset.retrainFactor
        let breached = wape.isFinite && wape > bound
        let first = breached && !f.breached
        let measurement = ForecastStore.Measurement(tenant: dataset.tenant, dataset: dataset.name, forecastID: forecastID, version: version,
                                                    points: points, wape: wape, mase: mase, wql: wql, bound: bound, breached: breached)
        context.write("accuracy of \(forecastID) on version \(version)") { tx in
            try await ForecastStore.record(measurement, firstBreach: first, in: tx)
        }
        if first {
            context.emit(AccuracyBreached(dataset: name, forecastID: forecastID, datasetVersion: version, points: points, bound: bound,
                                          wape: wape, mase: mase, wql: wql), subject: name)
            context.logger.warning("forecast accuracy breached its bound; retraining", metadata: [
                "dataset": "\(name)", "forecast": "\(forecastID)", "wape": "\(wape)", "bound": "\(bound)"])
        } else {
            context.logger.info("forecast accuracy measured", metadata: [
                "dataset": "\(name)", "forecast": "\(forecastID)", "wape": "\(wape)", "bound": "\(bound)", "breached": "\(breached)"])
        }
    }

    /// Scores the stored forecast on the actuals that overlap it, with the library's
    /// `BacktestScore`: WAPE of the p50, mean wQL, and MASE per item against its seasonal-naive
    /// scale on the history before the forecast.
    /// - Returns: the score and how many points were scored.
    func measure(forecastID: String, levels: [Double], dataset: Dataset, db: PostgresConnection) async throws -> (BacktestScore, Int) {
        let data = try await DatasetSeries.load(dataset, from: db)
        var steps: [String: [(Date, [Double])]] = [:]
        for (item, itemSteps) in try await ForecastStore.steps(of: forecastID, in: db) {
            steps[item] = itemSteps.filter { $0.quantiles.count == levels.count }.map { ($0.ts, $0.quantiles) }
        }
        var score = BacktestScore(levels: levels)
        var points = 0
        for s in data.series {
            guard let item = steps[s.id], let start = item.first?.0 else { continue }
            // Indices of the series from the forecast's first step on, by timestamp.
            var index: [Date: Int] = [:]
            var i = s.values.count - 1
            while i >= 0, s.timestamp(at: i) >= start { index[s.timestamp(at: i)] = i; i -= 1 }
            let cut = i + 1
            let matched = item.compactMap { step in index[step.0].map { (s.values[$0], step.1) } }
            guard !matched.isEmpty, cut > 1 else { continue }
            var quantiles: [Double: [Double]] = [:]
            for (k, l) in levels.enumerated() { quantiles[l] = matched.map { $0.1[k] } }
            let median = levels.firstIndex { abs($0 - 0.5) < 1e-9 } ?? levels.count / 2
            score.add(actual: matched.map(\.0), forecast: Forecast(mean: matched.map { $0.1[median] }, quantiles: quantiles),
                      insample: Array(s.values[..<cut]), season: s.frequency.defaultSeasons.first ?? 1)
            points += matched.count
        }
        return (score, points)
    }
}
