import AlmanacPostgres
import Foundation

/// Stored forecasts (`forecasts`, `forecast_points`), the latest-forecast table business
/// systems read (`latest_forecasts`) and the accuracy measured against later actuals
/// (`accuracy_measurements`). Every lookup is within a tenant.
public enum ForecastStore {
    /// A stored forecast's head.
    public struct Head: Sendable, Equatable {
        /// Its id.
        public var id: String
        /// The dataset.
        public var dataset: String
        /// Its quantile levels.
        public var levels: [Double]
        /// When it was made.
        public var createdAt: Date
        /// Whether new actuals broke its accuracy bound before.
        public var breached: Bool
        /// Its holdout WAPE (the champion's, else its predictor's), the monitor's reference.
        public var backtestWAPE: Double?
    }

    /// One step of one item.
    public struct Step: Sendable, Equatable {
        /// The timestamp.
        public var ts: Date
        /// The quantiles, in the forecast's level order.
        public var quantiles: [Double]
    }

    /// The tenant's forecast `id`, or nil when it has none of that id.
    public static func head(tenant: String, id: String, in db: PostgresConnection) async throws -> Head? {
        try await heads("f.tenant = $1 AND f.id = $2", [tenant, id], in: db).first
    }

    /// The newest forecast of a dataset made before dataset version `version` (the one new actuals measure).
    public static func live(tenant: String, dataset: String, before version: Int, in db: PostgresConnection) async throws -> Head? {
        try await heads("f.tenant = $1 AND f.dataset = $2 AND f.dataset_version < $3 ORDER BY f.created_at DESC, f.id DESC LIMIT 1",
                        [tenant, dataset, version], in: db).first
    }

    private static func heads(_ condition: String, _ parameters: [(any PostgresEncodable)?], in db: PostgresConnection) async throws -> [Head] {
        try await db.query("""
            SELECT f.id, f.dataset, array_to_string(f.quantiles, ',') AS q, f.created_at, f.breached_at IS NOT NULL AS breached,
                   coalesce(f.backtest_wape::text, p.metrics->>'WAPE') AS backtest_wape
            FROM forecasts f LEFT JOIN predictors p ON p.id = f.predictor_id WHERE \(condition)
            """, parameters).map { r in
            Head(id: try r.decode("id"), dataset: try r.decode("dataset"), levels: r.numbers("q"), createdAt: try r.decode("created_at"),
                 breached: try r.decode("breached"), backtestWAPE: r.text("backtest_wape").flatMap(Double.init))
        }
    }

    /// A forecast's steps per item, items and steps in order.
    public static func steps(of forecastID: String, in db: PostgresConnection) async throws -> [(item: String, steps: [Step])] {
        var out: [(item: String, steps: [Step])] = []
        for r in try await db.query("""
            SELECT item_id, ts, array_to_string(q, ',') AS q FROM forecast_points WHERE forecast_id = $1 ORDER BY item_id, ts
            """, [forecastID]) {
            let item: String = try r.decode("item_id")
            if out.last?.item != item { out.append((item, [])) }
            out[out.count - 1].steps.append(Step(ts: try r.decode("ts"), quantiles: r.numbers("q")))
        }
        return out
    }

    /// The last `count` observations of an item of the dataset's latest version, oldest first.
    public static func history(tenant: String, dataset: String, item: String, last count: Int,
                               in db: PostgresConnection) async throws -> [(Date, Double)] {
        try await db.query("""
            SELECT ts, value FROM (SELECT ts, value FROM dataset_observations($1, $2, $3) ORDER BY ts DESC LIMIT $4) h ORDER BY ts
            """, [tenant, dataset, item, count]).map { (try $0.decode("ts"), try $0.decode("value")) }
    }

    /// Makes forecast `id` the dataset's row set in `latest_forecasts`, unless a newer forecast is there already.
    public static func publishLatest(tenant: String, dataset: String, id: String, createdAt: Date, in tx: PostgresTransaction) async throws {
        // A forecast older than the one in the table (a late redelivery) does not replace it.
        let newer = try await tx.query("""
            SELECT 1 FROM latest_forecasts l JOIN forecasts f ON f.id = l.forecast_id
            WHERE l.tenant = $1 AND l.dataset = $2 AND f.created_at > $3 LIMIT 1
            """, [tenant, dataset, createdAt])
        guard newer.isEmpty else { return }
        try await tx.execute("DELETE FROM latest_forecasts WHERE tenant = $1 AND dataset = $2", [tenant, dataset])
        try await tx.execute("""
            INSERT INTO latest_forecasts (tenant, dataset, item_id, ts, forecast_id, quantiles, q, mean)
            SELECT $1, $2, p.item_id, p.ts, p.forecast_id, f.quantiles, p.q, p.mean
            FROM forecast_points p JOIN forecasts f ON f.id = p.forecast_id WHERE p.forecast_id = $3
            """, [tenant, dataset, id])
    }

    /// One measurement of a forecast against the actuals of dataset version `version`.
    public struct Measurement: Sendable {
        /// The tenant, dataset and forecast.
        public var tenant: String, dataset: String, forecastID: String
        /// The version whose actuals were scored, and how many points.
        public var version: Int, points: Int
        /// The scores (non-finite ones are stored as null).
        public var wape: Double, mase: Double, wql: Double
        /// The bound (infinite: none) and whether the WAPE broke it.
        public var bound: Double, breached: Bool
    }

    /// Records a measurement once per forecast and version; the first breach marks the forecast.
    public static func record(_ m: Measurement, firstBreach: Bool, in tx: PostgresTransaction) async throws {
        func finite(_ v: Double) -> Double? { v.isFinite ? v : nil }
        try await tx.execute("""
            INSERT INTO accuracy_measurements (tenant, dataset, forecast_id, dataset_version, points, wape, mase, wql, bound, breached)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (forecast_id, dataset_version) DO NOTHING
            """, [m.tenant, m.dataset, m.forecastID, m.version, m.points, finite(m.wape), finite(m.mase), finite(m.wql),
                  m.bound.isFinite ? m.bound : 1e300, m.breached])
        if firstBreach {
            try await tx.execute("UPDATE forecasts SET breached_at = now() WHERE id = $1 AND breached_at IS NULL", [m.forecastID])
        }
    }

    /// A stored measurement as the API lists it.
    public struct MeasuredRow: Sendable, Equatable {
        /// The forecast and the dataset version whose actuals it was scored on.
        public var forecastID: String, datasetVersion: Int
        /// Points scored.
        public var points: Int
        /// The scores and the bound (nil where not finite).
        public var wape: Double?, mase: Double?, wql: Double?, bound: Double?
        /// Whether the WAPE broke the bound.
        public var breached: Bool
        /// When it was measured.
        public var createdAt: Date
    }

    /// The dataset's measurements, oldest first (at most 10,000).
    public static func measurements(tenant: String, dataset: String, in db: PostgresConnection) async throws -> [MeasuredRow] {
        try await db.query("""
            SELECT forecast_id, dataset_version, points, wape, mase, wql, bound, breached, created_at FROM accuracy_measurements
            WHERE tenant = $1 AND dataset = $2 ORDER BY created_at, id LIMIT 10000
            """, [tenant, dataset]).map { r in
            MeasuredRow(forecastID: try r.decode("forecast_id"), datasetVersion: try r.decode("dataset_version"), points: try r.decode("points"),
                        wape: try r.decodeIfPresent("wape"), mase: try r.decodeIfPresent("mase"), wql: try r.decodeIfPresent("wql"),
                        bound: try r.decodeIfPresent("bound"), breached: try r.decode("breached"), createdAt: try r.decode("created_at"))
        }
    }

    /// One step of one item of a forecast, as the forecast query reads it.
    public struct Point: Sendable, Equatable {
        /// The item, the step's time and its mean.
        public var itemID: String, ts: Date, mean: Double
        /// The quantiles at the forecast's levels.
        public var q: [Double]
        /// The forecast's levels and id.
        public var levels: [Double], forecastID: String
    }

    /// A forecast's points by item and time: of the live forecast (`latest_forecasts`) or of
    /// forecast `forecastID`; for one item (by the primary key alone, one index range) or for
    /// the first `limit` items after `after`.
    public static func points(tenant: String, dataset: String, item: String?, forecastID: String?, after: String, limit: Int,
                              in db: PostgresConnection) async throws -> [Point] {
        let rows: PostgresRows
        switch (item, forecastID) {
        case (let item?, nil):
            rows = try await db.query("""
                SELECT item_id, ts, mean, array_to_string(q, ',') AS q, array_to_string(quantiles, ',') AS levels, forecast_id
                FROM latest_forecasts WHERE tenant = $1 AND dataset = $2 AND item_id = $3 ORDER BY ts
                """, [tenant, dataset, item])
        case (let item?, let id?):
            rows = try await db.query("""
                SELECT p.item_id, p.ts, p.mean, array_to_string(p.q, ',') AS q, array_to_string(f.quantiles, ',') AS levels, f.id AS forecast_id
                FROM forecasts f JOIN forecast_points p ON p.forecast_id = f.id
                WHERE f.id = $3 AND f.tenant = $1 AND f.dataset = $2 AND p.item_id = $4 ORDER BY p.ts
                """, [tenant, dataset, id, item])
        case (nil, nil):
            rows = try await db.query("""
                WITH items AS (SELECT DISTINCT item_id FROM latest_forecasts
                               WHERE tenant = $1 AND dataset = $2 AND item_id > $3 ORDER BY 1 LIMIT $4)
                SELECT l.item_id, l.ts, l.mean, array_to_string(l.q, ',') AS q, array_to_string(l.quantiles, ',') AS levels, l.forecast_id
                FROM latest_forecasts l JOIN items i ON i.item_id = l.item_id
                WHERE l.tenant = $1 AND l.dataset = $2 ORDER BY l.item_id, l.ts
                """, [tenant, dataset, after, limit])
        case (nil, let id?):
            rows = try await db.query("""
                WITH items AS (SELECT DISTINCT p.item_id FROM forecast_points p JOIN forecasts f ON f.id = p.forecast_id
                               WHERE f.tenant = $1 AND f.dataset = $2 AND f.id = $3 AND p.item_id > $4 ORDER BY 1 LIMIT $5)
                SELECT p.item_id, p.ts, p.mean, array_to_string(p.q, ',') AS q, array_to_string(f.quantiles, ',') AS levels, f.id AS forecast_id
                FROM forecast_points p JOIN forecasts f ON f.id = p.forecast_id JOIN items i ON i.item_id = p.item_id
                WHERE f.tenant = $1 AND f.id = $3 ORDER BY p.item_id, p.ts
                """, [tenant, dataset, id, after, limit])
        }
        // Every row of one forecast carries the same levels and id: read them once.
        var levels: [Double] = [], forecast = ""
        return try rows.enumerated().map { i, r in
            if i == 0 { levels = r.numbers("levels"); forecast = try r.decode("forecast_id") }
            return Point(itemID: try r.decode("item_id"), ts: try r.decode("ts"), mean: try r.decode("mean"), q: r.numbers("q"),
                         levels: levels, forecastID: forecast)
        }
    }
}
