import AlmanacCore
import AlmanacForecast
import AlmanacPostgres
import AlmanacRuntime
import Foundation

/// The monitor function: on `almanac.dataset.imported`, measures the live forecast (the newest
/// one made before this version) on the actuals that now overlap it — WAPE of the p50, MASE
/// and mean weighted quantile loss — and stores the measurement. When the WAPE passes the
/// dataset's bound (an absolute `retrain_wape`, else `retrain_factor` × the predictor's
/// backtest WAPE), it emits `almanac.accuracy.breached`, at most once per forecast.
public struct MonitorFunction: FunctionHandler {
    /// Makes the handler.
    public init() {}

    /// Measures the live forecast against new actuals.
    public func handle(_ event: CloudEvent, context: FunctionContext) async throws {
        let db = context.database
        let name = event.jsonData?["dataset"]?.stringValue ?? event.subject ?? ""
        guard let dataset = try await DatasetStore.find(tenant: event.tenant, name: name, in: db) else {
            throw FunctionError("dataset \(name) does not exist for tenant \(event.tenant)", retriable: false)
        }
        let version = event.jsonData?["version"]?.intValue ?? 0
        let live = try await db.query("""
            SELECT f.id, f.breached_at IS NOT NULL AS breached, array_to_string(f.quantiles, ',') AS q, p.metrics->>'WAPE' AS backtest_wape
            FROM forecasts f JOIN predictors p ON p.id = f.predictor_id
            WHERE f.tenant = $1 AND f.dataset = $2 AND f.dataset_version < $3 ORDER BY f.created_at DESC, f.id DESC LIMIT 1
            """, [dataset.tenant, dataset.name, version])
        guard let f = live.first else {
            context.logger.info("no earlier forecast to measure", metadata: ["dataset": "\(name)"])
            return
        }
        let forecastID: String = try f.decode("id")
        let levels = (f.text("q") ?? "").split(separator: ",").compactMap { Double($0) }
        let pairs = try await db.query("""
            SELECT p.item_id, o.value, array_to_string(p.q, ',') AS q FROM forecast_points p
            JOIN observations o ON o.tenant = $2 AND o.dataset = $3 AND o.item_id = p.item_id AND o.ts = p.ts
            WHERE p.forecast_id = $1 ORDER BY p.item_id, p.ts
            """, [forecastID, dataset.tenant, dataset.name])
        guard !pairs.isEmpty else {
            context.logger.info("new actuals do not overlap the live forecast", metadata: ["dataset": "\(name)", "forecast": "\(forecastID)"])
            return
        }
        var accuracy = ForecastAccuracy(levels: levels)
        for r in pairs {
            accuracy.add(actual: try r.decode("value"), quantiles: (r.text("q") ?? "").split(separator: ",").compactMap { Double($0) })
        }
        let mase = try await scaledError(forecastID: forecastID, dataset: dataset, db: db)
        let backtestWAPE = f.text("backtest_wape").flatMap(Double.init)
        let bound = dataset.retrainWAPE ?? (backtestWAPE ?? .infinity) * dataset.retrainFactor
        let wape = accuracy.wape, wql = accuracy.wql, points = accuracy.points
        let breached = wape.isFinite && wape > bound
        let first = breached && f.text("breached") != "t"
        context.write { tx in
            try await tx.execute("""
                INSERT INTO accuracy_measurements (tenant, dataset, forecast_id, dataset_version, points, wape, mase, wql, bound, breached)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (forecast_id, dataset_version) DO NOTHING
                """, [dataset.tenant, dataset.name, forecastID, version, points, finite(wape), finite(mase), finite(wql),
                      bound.isFinite ? bound : 1e300, breached])
            if first { try await tx.execute("UPDATE forecasts SET breached_at = now() WHERE id = $1 AND breached_at IS NULL", [forecastID]) }
        }
        var data: [String: JSONValue] = [
            "dataset": .string(name), "forecast_id": .string(forecastID), "dataset_version": .number(Double(version)),
            "points": .number(Double(accuracy.points)), "bound": .number(bound.isFinite ? bound : -1),
        ]
        for (k, v) in [("wape", wape), ("mase", mase), ("wql", accuracy.wql)] where v.isFinite { data[k] = .number(v) }
        if first {
            context.emit(type: "almanac.accuracy.breached", subject: name, json: .object(data))
            context.logger.warning("forecast accuracy breached its bound; retraining", metadata: [
                "dataset": "\(name)", "forecast": "\(forecastID)", "wape": "\(wape)", "bound": "\(bound)"])
        } else {
            context.logger.info("forecast accuracy measured", metadata: [
                "dataset": "\(name)", "forecast": "\(forecastID)", "wape": "\(wape)", "bound": "\(bound)", "breached": "\(breached)"])
        }
    }

    func finite(_ v: Double) -> Double? { v.isFinite ? v : nil }

    /// MASE of the p50 over the overlapping actuals, per item against its seasonal-naive
    /// scale on the history before the forecast, averaged over items.
    func scaledError(forecastID: String, dataset: Dataset, db: PostgresConnection) async throws -> Double {
        let data = try await DatasetSeries.load(dataset, from: db)
        let points = try await db.query("""
            SELECT item_id, extract(epoch FROM ts)::float8 AS t, array_to_string(q, ',') AS q FROM forecast_points
            WHERE forecast_id = $1 ORDER BY item_id, ts
            """, [forecastID])
        var byItem: [String: [(Date, Double)]] = [:]
        let mid = { (q: [Double]) in q.isEmpty ? Double.nan : q[q.count / 2] }
        for r in points {
            let q = (r.text("q") ?? "").split(separator: ",").compactMap { Double($0) }
            byItem[r.text("item_id") ?? "", default: []].append((Date(timeIntervalSince1970: try r.decode("t")), mid(q)))
        }
        var mases: [Double] = []
        for s in data.series {
            guard let steps = byItem[s.id], let start = steps.first?.0 else { continue }
            let cut = s.values.indices.first { s.timestamp(at: $0) >= start } ?? s.values.count
            let actual = steps.compactMap { step in s.values.indices.first { s.timestamp(at: $0) == step.0 }.map { (s.values[$0], step.1) } }
            guard !actual.isEmpty, cut > 1 else { continue }
            let m = Metrics.mase(actual: actual.map(\.0), forecast: actual.map(\.1), insample: Array(s.values[..<cut]), season: s.frequency.defaultSeasons.first ?? 1)
            if m.isFinite { mases.append(m) }
        }
        return mases.isEmpty ? .nan : mases.reduce(0, +) / Double(mases.count)
    }
}

/// Accuracy of stored forecast points against actuals: WAPE of the median and the mean wQL.
struct ForecastAccuracy {
    let levels: [Double]
    var absActual = 0.0, absError = 0.0
    var pinball: [Double]
    var points = 0

    init(levels: [Double]) {
        self.levels = levels
        pinball = [Double](repeating: 0, count: levels.count)
    }

    /// Adds one point: the actual and the forecast's quantiles in `levels` order.
    mutating func add(actual y: Double, quantiles q: [Double]) {
        guard q.count == levels.count, !q.isEmpty else { return }
        let median = levels.firstIndex { abs($0 - 0.5) < 1e-9 } ?? q.count / 2
        absActual += abs(y)
        absError += abs(y - q[median])
        for (i, l) in levels.enumerated() { pinball[i] += y >= q[i] ? l * (y - q[i]) : (1 - l) * (q[i] - y) }
        points += 1
    }

    var wape: Double { absActual == 0 ? .nan : absError / absActual }
    var wql: Double { absActual == 0 ? .nan : pinball.map { 2 * $0 / absActual }.reduce(0, +) / Double(levels.count) }
}
