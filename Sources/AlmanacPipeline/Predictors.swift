import AlmanacCore
import AlmanacForecast
import AlmanacPostgres
import Foundation

/// A trained predictor: what AutoML chose per item (or the deep model's network, stored in
/// `predictor_models`), with backtest metrics per item and overall, and each item's holdout
/// forecast for champion selection.
public struct Predictor: Sendable {
    /// One item's choice.
    public struct Item: Sendable {
        /// The item.
        public var id: String
        /// The model to forecast it with.
        public var model: ChosenModel
        /// The model as fitted, with AutoML's reason.
        public var method: String
        /// Backtest metrics (`WAPE`, `avg_wQL`, `MASE`, …).
        public var metrics: [String: Double]
        /// The item's last `horizon` values at training time, and the predictor's forecast of
        /// them from the values before them; nil when the item was too short to hold out.
        public var holdout: (actual: [Double], forecast: Forecast)? = nil
    }

    /// `pr-` (statistical) or `pd-` (deep) and the id of the event that asked for it.
    public var id: String
    /// The dataset.
    public var tenant: String, dataset: String
    /// The dataset version it was trained on.
    public var datasetVersion: Int
    /// Per item.
    public var items: [Item]
    /// Pooled backtest metrics over every item and window.
    public var metrics: [String: Double]
    /// Statistical AutoML or the deep model.
    public var kind: PredictorKind = .statistical

    /// Metrics as JSON (non-finite values dropped).
    static func json(_ metrics: [String: Double]) -> JSONValue {
        .object(metrics.filter { $0.value.isFinite }.mapValues { .number($0) })
    }

    /// A score's metrics by name.
    static func dictionary(_ score: BacktestScore) -> [String: Double] {
        Dictionary(score.metrics.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    /// Trains on every series: AutoML with backtests per item, in parallel.
    /// - Parameter progress: called with (items done, total).
    public static func train(id: String, dataset d: Dataset, data: DatasetSeries,
                             progress: (@Sendable (Int, Int) -> Void)? = nil) async -> Predictor {
        let automl = AutoMLModel()
        let results = await ForecastEngine.map(data.series, progress: progress) { s in
            automl.choose(s.values, horizon: d.horizon, seasons: s.frequency.defaultSeasons, levels: d.quantiles)
        }
        var pooled = BacktestScore(levels: Array(Set(d.quantiles + [0.5])).sorted())
        var items: [Item] = []
        for (s, choice) in zip(data.series, results) {
            pooled.merge(choice.backtest)
            items.append(Item(id: s.id, model: choice.model, method: choice.forecast.method,
                              metrics: Self.dictionary(choice.backtest),
                              holdout: choice.holdout.map { (Array(s.values.suffix(d.horizon)), $0) }))
        }
        return Predictor(id: id, tenant: d.tenant, dataset: d.name, datasetVersion: data.version, items: items,
                         metrics: Self.dictionary(pooled))
    }

    /// Stores the predictor (inside the function's commit transaction).
    public func save(trigger: String, in tx: PostgresTransaction) async throws {
        try await tx.execute("""
            INSERT INTO predictors (id, tenant, dataset, dataset_version, trigger_event, items, metrics, kind)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)
            """, [id, tenant, dataset, datasetVersion, trigger, items.count, Self.json(metrics).serialized(), kind.rawValue])
        _ = try await tx.copyIn("COPY predictor_items (predictor_id, item_id, members, combination, method, metrics) FROM STDIN WITH (FORMAT csv)") { w in
            var chunk = ""
            for item in items {
                let members = "{" + item.model.members.map { "\"\($0)\"" }.joined(separator: ",") + "}"
                chunk += [id, item.id, members, item.model.combination.rawValue, item.method, Self.json(item.metrics).serialized()]
                    .map(CSVField.quote).joined(separator: ",") + "\n"
                if chunk.utf8.count > 1 << 16 { try await w.write(chunk); chunk = "" }
            }
            if !chunk.isEmpty { try await w.write(chunk) }
        }
        _ = try await tx.copyIn("COPY predictor_holdouts (predictor_id, item_id, actual, levels, quantiles) FROM STDIN WITH (FORMAT csv)") { w in
            var chunk = ""
            for item in items {
                guard let (actual, f) = item.holdout else { continue }
                let levels = f.quantiles.keys.sorted()
                let steps = actual.indices.map { h in "{" + levels.map { ForecastRun.number(f.quantiles[$0]?[h] ?? .nan) }.joined(separator: ",") + "}" }
                chunk += [id, item.id, "{" + actual.map(ForecastRun.number).joined(separator: ",") + "}",
                          "{" + levels.map { String($0) }.joined(separator: ",") + "}", "{" + steps.joined(separator: ",") + "}"]
                    .map(CSVField.quote).joined(separator: ",") + "\n"
                if chunk.utf8.count > 1 << 16 { try await w.write(chunk); chunk = "" }
            }
            if !chunk.isEmpty { try await w.write(chunk) }
        }
    }

    /// The dataset's newest predictor of the kind, or nil.
    public static func latest(tenant: String, dataset: String, kind: PredictorKind = .statistical, in db: PostgresConnection) async throws -> Predictor? {
        let rows = try await db.query("""
            SELECT id FROM predictors WHERE tenant = $1 AND dataset = $2 AND kind = $3
            ORDER BY dataset_version DESC, created_at DESC, id DESC LIMIT 1
            """, [tenant, dataset, kind.rawValue])
        guard let r = rows.first else { return nil }
        return try await load(id: try r.decode("id"), in: db)
    }

    /// A stored predictor as the API lists it: what started its training and each item's choice.
    public struct Summary: Sendable {
        /// Its id, kind and the dataset version it was trained on.
        public var id: String, kind: String, datasetVersion: Int
        /// Backtest metrics (JSON).
        public var metrics: JSONValue
        /// When it was stored.
        public var createdAt: Date
        /// The event that started its training, and that event's type when it is archived.
        public var triggerEvent: String, triggerType: String?
        /// Each item's chosen model: (item, model, combination, members).
        public var items: [(item: String, model: String, combination: String, members: [String])]
    }

    /// The dataset's predictors, newest first (at most `limit`, each with at most 10,000 items).
    public static func summaries(tenant: String, dataset: String, limit: Int, in db: PostgresConnection) async throws -> [Summary] {
        let rows = try await db.query("""
            SELECT p.id, p.kind, p.dataset_version, p.metrics::text AS metrics, p.created_at, p.trigger_event,
                   (SELECT a.type FROM event_archive a WHERE a.id = p.trigger_event AND a.tenant = p.tenant LIMIT 1) AS trigger_type
            FROM predictors p
            WHERE p.tenant = $1 AND p.dataset = $2 ORDER BY p.created_at DESC, p.id DESC LIMIT $3
            """, [tenant, dataset, limit])
        var out: [Summary] = []
        for r in rows {
            let id: String = try r.decode("id")
            let items = try await db.query("""
                SELECT item_id, method, combination, array_to_string(members, ',') AS members FROM predictor_items
                WHERE predictor_id = $1 ORDER BY item_id LIMIT 10000
                """, [id]).map { i in
                (item: try i.decode("item_id", as: String.self), model: try i.decode("method", as: String.self),
                 combination: try i.decode("combination", as: String.self),
                 members: (i.text("members") ?? "").split(separator: ",").map(String.init))
            }
            out.append(Summary(id: id, kind: try r.decode("kind"), datasetVersion: try r.decode("dataset_version"),
                               metrics: (try? JSONValue(parsing: r.text("metrics") ?? "{}")) ?? .object([:]),
                               createdAt: try r.decode("created_at"), triggerEvent: try r.decode("trigger_event"),
                               triggerType: r.text("trigger_type"), items: items))
        }
        return out
    }

    /// One predictor's backtest of one item: the model chosen, its metrics, and the held-out
    /// window (actuals, levels, quantiles flattened `[step][level]`; empty without a holdout).
    public struct ItemBacktest: Sendable {
        /// The predictor, its kind and dataset version, and when it was stored.
        public var predictorID: String, kind: String, datasetVersion: Int, createdAt: Date
        /// Whether the live forecast came from it.
        public var live: Bool
        /// The model chosen for the item and its backtest metrics, when it covers the item.
        public var model: String?, metrics: JSONValue?
        /// The held-out values, the levels and the quantiles of the window.
        public var actual: [Double], levels: [Double], quantiles: [Double]
    }

    /// The dataset's latest predictors' backtests of `item`, newest first.
    public static func backtests(tenant: String, dataset: String, item: String, limit: Int, in db: PostgresConnection) async throws -> [ItemBacktest] {
        try await db.query("""
            SELECT p.id, p.kind, p.dataset_version, p.created_at, i.method, i.metrics::text AS metrics,
                   array_to_string(h.actual, ',') AS actual, array_to_string(h.levels, ',') AS levels,
                   array_to_string(h.quantiles, ',') AS quantiles,
                   p.id = (SELECT f.predictor_id FROM latest_forecasts l JOIN forecasts f ON f.id = l.forecast_id
                           WHERE l.tenant = $1 AND l.dataset = $2 LIMIT 1) AS live
            FROM predictors p
            LEFT JOIN predictor_items i ON i.predictor_id = p.id AND i.item_id = $3
            LEFT JOIN predictor_holdouts h ON h.predictor_id = p.id AND h.item_id = $3
            WHERE p.tenant = $1 AND p.dataset = $2 ORDER BY p.created_at DESC, p.id DESC LIMIT $4
            """, [tenant, dataset, item, limit]).map { r in
            ItemBacktest(predictorID: try r.decode("id"), kind: try r.decode("kind"), datasetVersion: try r.decode("dataset_version"),
                         createdAt: try r.decode("created_at"), live: (try? r.decode("live", as: Bool.self)) ?? false,
                         model: r.text("method"), metrics: r.text("metrics").flatMap { try? JSONValue(parsing: $0) },
                         actual: r.numbers("actual"), levels: r.numbers("levels"), quantiles: r.numbers("quantiles"))
        }
    }

    /// The dataset version of the newest predictor of a kind, or nil when there is none.
    public static func newestVersion(tenant: String, dataset: String, kind: PredictorKind, in db: PostgresConnection) async throws -> Int? {
        try await db.query("SELECT max(dataset_version) AS v FROM predictors WHERE tenant = $1 AND dataset = $2 AND kind = $3",
                           [tenant, dataset, kind.rawValue]).first?.decodeIfPresent("v", as: Int.self)
    }

    /// A stored predictor by id, or nil.
    public static func load(id: String, in db: PostgresConnection) async throws -> Predictor? {
        let rows = try await db.query("SELECT tenant, dataset, dataset_version, kind, metrics::text AS metrics FROM predictors WHERE id = $1", [id])
        guard let r = rows.first else { return nil }
        var holdouts: [String: ([Double], Forecast)] = [:]
        for h in try await db.query("""
            SELECT item_id, array_to_string(actual, ',') AS actual, array_to_string(levels, ',') AS levels,
                   array_to_string(quantiles, ',') AS quantiles FROM predictor_holdouts WHERE predictor_id = $1
            """, [id]) {
            let actual = h.numbers("actual"), levels = h.numbers("levels"), flat = h.numbers("quantiles")
            guard !levels.isEmpty, flat.count == actual.count * levels.count else { continue }
            var q: [Double: [Double]] = [:]
            for (j, l) in levels.enumerated() { q[l] = actual.indices.map { flat[$0 * levels.count + j] } }
            let median = q[0.5] ?? q[levels[levels.count / 2]]!
            holdouts[try h.decode("item_id")] = (actual, Forecast(mean: median, quantiles: q))
        }
        let items = try await db.query("""
            SELECT item_id, array_to_string(members, ',') AS members, combination, method, metrics::text AS metrics
            FROM predictor_items WHERE predictor_id = $1 ORDER BY item_id
            """, [id])
        func metrics(_ text: String?) -> [String: Double] {
            ((try? JSONValue(parsing: text ?? "{}"))?.objectValue ?? [:]).compactMapValues(\.numberValue)
        }
        return Predictor(
            id: id, tenant: try r.decode("tenant"), dataset: try r.decode("dataset"), datasetVersion: try r.decode("dataset_version"),
            items: try items.map { i in
                Item(id: try i.decode("item_id"),
                     model: ChosenModel(members: (i.text("members") ?? "").split(separator: ",").map(String.init),
                                        combination: Combination(rawValue: i.text("combination") ?? "") ?? .mean),
                     method: i.text("method") ?? "", metrics: metrics(i.text("metrics")),
                     holdout: holdouts[i.text("item_id") ?? ""])
            },
            metrics: metrics(r.text("metrics")), kind: PredictorKind(rawValue: r.text("kind") ?? "") ?? .statistical)
    }
}

/// CSV quoting for COPY … (FORMAT csv).
public enum CSVField {
    /// The field quoted when it holds a comma, quote or line break (RFC 4180), its quotes doubled.
    public static func quote(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
