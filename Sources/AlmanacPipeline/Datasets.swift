import AlmanacCore
import AlmanacForecast
import AlmanacPostgres
import Foundation

/// A dataset: a tenant's named collection of target series, and how it is forecast.
public struct Dataset: Sendable, Equatable {
    /// The owning tenant.
    public var tenant: String
    /// The dataset's name (letters, digits, `-`, `_`, `.`).
    public var name: String
    /// Steps to forecast.
    public var horizon: Int
    /// The grid (`hourly`, `daily`, …); nil: inferred from the timestamps.
    public var frequency: String?
    /// Quantile levels of its forecasts.
    public var quantiles: [Double]
    /// An absolute WAPE bound that triggers a retrain, when set.
    public var retrainWAPE: Double?
    /// Otherwise: retrain when WAPE exceeds this × the predictor's backtest WAPE.
    public var retrainFactor: Double
    /// The share of bad rows above which a file is rejected whole.
    public var maxErrorRate: Double
    /// The most bytes an ingest reads from one file, after decompression (10 GiB by default).
    public var maxFileBytes: Int64
    /// The longest line an ingest accepts, in bytes (1 MiB by default); a longer one is a bad row.
    public var maxLineBytes: Int
    /// `statistical` (AutoML), `deep` (the deep global model) or `champion` (both, the
    /// better by holdout backtest, or their mean).
    public var models: String

    /// Makes a dataset description.
    public init(tenant: String, name: String, horizon: Int, frequency: String? = nil, quantiles: [Double] = [0.1, 0.5, 0.9],
                retrainWAPE: Double? = nil, retrainFactor: Double = 1.5, maxErrorRate: Double = 0.1,
                models: String = "statistical", maxFileBytes: Int64 = Dataset.defaultMaxFileBytes,
                maxLineBytes: Int = Dataset.defaultMaxLineBytes) {
        self.maxFileBytes = maxFileBytes
        self.maxLineBytes = maxLineBytes
        self.tenant = tenant
        self.name = name
        self.horizon = horizon
        self.frequency = frequency
        self.quantiles = quantiles
        self.retrainWAPE = retrainWAPE
        self.retrainFactor = retrainFactor
        self.maxErrorRate = maxErrorRate
        self.models = models
    }

    /// The longest horizon a dataset may ask for.
    public static let maxHorizon = 10_000
    /// The default bound on a file's decompressed size: 10 GiB.
    public static let defaultMaxFileBytes: Int64 = 10 << 30
    /// The default bound on one line: 1 MiB.
    public static let defaultMaxLineBytes = 1 << 20

    /// The values `models` takes.
    public static let modelChoices = ["statistical", "deep", "champion"]

    /// Whether the statistical AutoML trains for it.
    public var trainsStatistical: Bool { models != "deep" }
    /// Whether the deep model trains for it.
    public var trainsDeep: Bool { models != "statistical" }

    /// Whether `name` is a valid dataset name: a `Slug` of at most 100 characters.
    public static func isValidName(_ name: String) -> Bool { Slug.isValid(name, maxLength: Slug.maxDatasetLength) }
}

/// Reads and writes `datasets`.
public enum DatasetStore {
    /// Creates a dataset.
    /// - Throws: `PipelineError` when the name is invalid, the horizon not positive, or the dataset exists.
    public static func create(_ d: Dataset, in db: PostgresConnection) async throws {
        if let problem = Slug.problem(d.name, what: "dataset", maxLength: Slug.maxDatasetLength) { throw PipelineError(problem) }
        if let problem = Slug.problem(d.tenant, what: "tenant", maxLength: Slug.maxTenantLength) { throw PipelineError(problem) }
        guard (1...Dataset.maxHorizon).contains(d.horizon) else { throw PipelineError("horizon must be between 1 and \(Dataset.maxHorizon), got \(d.horizon)") }
        guard !d.quantiles.isEmpty, d.quantiles.count <= 99, d.quantiles.allSatisfy({ $0 > 0 && $0 < 1 }), Set(d.quantiles).count == d.quantiles.count else {
            throw PipelineError("quantiles must be 1 to 99 distinct levels between 0 and 1, got \(d.quantiles)")
        }
        if let f = d.frequency, Frequency(rawValue: f) == nil {
            throw PipelineError("frequency must be one of \(Frequency.allCases.map(\.rawValue).joined(separator: ", ")), got \(EventLimits.quoted(f))")
        }
        guard (0...1).contains(d.maxErrorRate) else { throw PipelineError("max_error_rate must be between 0 and 1, got \(d.maxErrorRate)") }
        guard d.retrainFactor.isFinite, d.retrainFactor > 0, d.retrainFactor <= 1000 else {
            throw PipelineError("retrain_factor must be above 0 and at most 1000, got \(d.retrainFactor)")
        }
        if let w = d.retrainWAPE, !(w.isFinite && w >= 0 && w <= 1000) { throw PipelineError("retrain_wape must be between 0 and 1000, got \(w)") }
        guard Dataset.modelChoices.contains(d.models) else {
            throw PipelineError("--models must be one of \(Dataset.modelChoices.joined(separator: ", ")), got \"\(d.models)\"")
        }
        guard d.maxFileBytes > 0, (64...(1 << 30)).contains(d.maxLineBytes) else {
            throw PipelineError("--max-file-bytes must be ≥ 1 and --max-line-bytes between 64 and 1073741824, got \(d.maxFileBytes) and \(d.maxLineBytes)")
        }
        let inserted = try await db.execute("""
            INSERT INTO datasets (tenant, name, horizon, frequency, quantiles, retrain_wape, retrain_factor, max_error_rate, models,
                                  max_file_bytes, max_line_bytes)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING
            """, [d.tenant, d.name, d.horizon, d.frequency, d.quantiles.sorted(), d.retrainWAPE, d.retrainFactor, d.maxErrorRate, d.models,
                  d.maxFileBytes, d.maxLineBytes])
        guard inserted == 1 else { throw PipelineError("dataset \"\(d.name)\" already exists for tenant \(d.tenant)") }
    }

    /// Deletes a dataset and everything made from it: its observation batches (their
    /// partitions dropped), versions, import reports, predictors, forecasts, live forecast,
    /// accuracy history and training progress, in one transaction; the dataset's row is
    /// locked first, so an ingest or training committing meanwhile waits, then fails (its
    /// dataset is gone) and is dead-lettered rather than writing into a deleted dataset.
    /// - Returns: false when the tenant has no such dataset.
    public static func delete(tenant: String, name: String, in db: PostgresConnection) async throws -> Bool {
        try await db.transaction { tx in
            guard try await !tx.query("SELECT 1 FROM datasets WHERE tenant = $1 AND name = $2 FOR UPDATE", [tenant, name]).isEmpty else { return false }
            // A partition that holds one batch is dropped whole; rows in a shared one (data
            // from before batches) are deleted.
            let partitions = try await tx.query("""
                SELECT c.relname AS name FROM observation_batches b
                JOIN pg_inherits i ON i.inhparent = 'observation_rows'::regclass JOIN pg_class c ON c.oid = i.inhrelid
                WHERE b.tenant = $1 AND b.dataset = $2 AND pg_get_expr(c.relpartbound, c.oid) = format('FOR VALUES IN (''%s'')', b.batch)
                """, [tenant, name])
            for p in partitions {
                let table: String = try p.decode("name")
                // Names from the catalog, of the form ingest gives them (letters, hex and digits).
                guard table.range(of: "^observation_batch_[0-9a-f]+_[0-9]+$", options: .regularExpression) != nil else { continue }
                try await tx.runScript("DROP TABLE \(table)")
            }
            // The batch numbers as values, so only partitions that may hold them are scanned.
            let batches = try await tx.query("SELECT batch FROM observation_batches WHERE tenant = $1 AND dataset = $2", [tenant, name])
                .map { try $0.decode("batch", as: Int64.self) }
            if !batches.isEmpty { try await tx.execute("DELETE FROM observation_rows WHERE batch = ANY($1::bigint[])", [batches]) }
            for table in ["observation_batches", "latest_forecasts", "accuracy_measurements", "forecasts", "predictors",
                          "dataset_versions", "ingest_reports"] {
                try await tx.execute("DELETE FROM \(table) WHERE tenant = $1 AND dataset = $2", [tenant, name])
            }
            try await tx.execute("DELETE FROM datasets WHERE tenant = $1 AND name = $2", [tenant, name])
            return true
        }
    }

    /// The dataset, or nil.
    public static func find(tenant: String, name: String, in db: PostgresConnection) async throws -> Dataset? {
        try await list(tenant: tenant, name: name, in: db).first
    }

    /// The tenant's datasets by name (one when `name` is given).
    public static func list(tenant: String, name: String? = nil, in db: PostgresConnection) async throws -> [Dataset] {
        let rows = try await db.query("""
            SELECT \(columns) FROM datasets WHERE tenant = $1 AND ($2::text IS NULL OR name = $2) ORDER BY name
            """, [tenant, name])
        return try rows.map { try dataset(from: $0, tenant: tenant) }
    }

    /// The columns `dataset(from:tenant:)` reads, for a select list.
    public static let columns = """
        name, horizon, frequency, array_to_string(quantiles, ',') AS quantiles, retrain_wape, retrain_factor, max_error_rate, models,
        max_file_bytes, max_line_bytes
        """

    /// A dataset from a row holding `columns`.
    public static func dataset(from r: PostgresRow, tenant: String) throws -> Dataset {
        Dataset(tenant: tenant, name: try r.decode("name"), horizon: try r.decode("horizon"), frequency: try r.decodeIfPresent("frequency"),
                quantiles: r.numbers("quantiles"),
                retrainWAPE: try r.decodeIfPresent("retrain_wape"), retrainFactor: try r.decode("retrain_factor"),
                maxErrorRate: try r.decode("max_error_rate"), models: try r.decode("models"),
                maxFileBytes: try r.decode("max_file_bytes"), maxLineBytes: try r.decode("max_line_bytes"))
    }
}

/// A pipeline error a user can act on: what was wrong and what to do.
public struct PipelineError: Error, CustomStringConvertible, Sendable {
    /// The message.
    public var message: String
    /// Makes an error.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

extension DatasetStore {
    /// A dataset's latest version and live forecast.
    public struct Latest: Sendable, Equatable {
        /// The latest version, when it has one.
        public var version: Int?
        /// The forecast in `latest_forecasts`, when there is one.
        public var liveForecastID: String?
    }

    /// One version of a dataset: the import that made it.
    public struct Version: Sendable, Equatable {
        /// The version and the import (`ingest_id`) that made it.
        public var version: Int, importID: String
        /// The file's location.
        public var source: String
        /// Rows read, refused and changed, and items.
        public var rowsRead: Int, rowsRejected: Int, rowsChanged: Int, items: Int
        /// When it was made.
        public var createdAt: Date
    }

    /// One import's report, accepted or not.
    public struct ImportReport: Sendable, Equatable {
        /// The import and the file's location.
        public var importID: String, source: String
        /// Whether it became a version.
        public var accepted: Bool
        /// The report (JSON).
        public var report: JSONValue
        /// When it was made.
        public var createdAt: Date
    }

    /// A dataset's latest version and live forecast, as select-list columns over `datasets d`.
    static let latestColumns = """
        (SELECT max(version) FROM dataset_versions v WHERE v.tenant = d.tenant AND v.dataset = d.name) AS version,
        (SELECT forecast_id FROM latest_forecasts l WHERE l.tenant = d.tenant AND l.dataset = d.name LIMIT 1) AS forecast
        """

    static func latest(from r: PostgresRow) -> Latest {
        Latest(version: r.text("version").flatMap(Int.init), liveForecastID: r.text("forecast"))
    }

    /// The tenant's datasets after `after`, by name, each with its latest version and live forecast: one statement.
    public static func page(tenant: String, after: String?, limit: Int, in db: PostgresConnection) async throws -> [(Dataset, Latest)] {
        try await db.query("""
            SELECT \(columns), \(latestColumns) FROM datasets d
            WHERE d.tenant = $1 AND ($2::text IS NULL OR d.name > $2) ORDER BY d.name LIMIT $3
            """, [tenant, after, limit]).map { r in (try dataset(from: r, tenant: tenant), latest(from: r)) }
    }

    /// A dataset's latest version and live forecast, or nil when the tenant has no such dataset.
    public static func latest(tenant: String, name: String, in db: PostgresConnection) async throws -> Latest? {
        try await db.query("SELECT \(latestColumns) FROM datasets d WHERE d.tenant = $1 AND d.name = $2", [tenant, name]).first.map(latest(from:))
    }

    /// A dataset's latest versions, newest first.
    public static func versions(tenant: String, name: String, limit: Int, in db: PostgresConnection) async throws -> [Version] {
        try await db.query("""
            SELECT version, ingest_id, source, rows_read, rows_rejected, rows_changed, items, created_at FROM dataset_versions
            WHERE tenant = $1 AND dataset = $2 ORDER BY version DESC LIMIT $3
            """, [tenant, name, limit]).map { v in
            Version(version: try v.decode("version"), importID: try v.decode("ingest_id"), source: try v.decode("source"),
                    rowsRead: try v.decode("rows_read"), rowsRejected: try v.decode("rows_rejected"), rowsChanged: try v.decode("rows_changed"),
                    items: try v.decode("items"), createdAt: try v.decode("created_at"))
        }
    }

    /// A dataset's latest import reports, newest first.
    public static func importReports(tenant: String, name: String, limit: Int, in db: PostgresConnection) async throws -> [ImportReport] {
        try await db.query("""
            SELECT ingest_id, source, accepted, report::text AS report, created_at FROM ingest_reports
            WHERE tenant = $1 AND dataset = $2 ORDER BY created_at DESC, ingest_id LIMIT $3
            """, [tenant, name, limit]).map { r in
            ImportReport(importID: try r.decode("ingest_id"), source: try r.decode("source"), accepted: try r.decode("accepted"),
                         report: (try? JSONValue(parsing: r.text("report") ?? "{}")) ?? .object([:]), createdAt: try r.decode("created_at"))
        }
    }

    /// What became of an import (a data arrival's event id) of the tenant's dataset.
    public enum ImportState: Sendable, Equatable {
        /// Ingest reported: accepted (with the version it made, if it changed anything) or rejected, with the report.
        case reported(accepted: Bool, report: JSONValue, version: Int?)
        /// It was dead-lettered (by the router or ingest) with this error.
        case failed(String)
        /// It was archived and waits for ingest.
        case pending
    }

    /// The state of import `id` of the tenant's dataset, or nil when there is no such import.
    public static func importState(tenant: String, dataset: String, id: String, in db: PostgresConnection) async throws -> ImportState? {
        guard let r = try await db.query("""
            SELECT 1 AS rank, r.accepted, r.report::text AS report,
                   (SELECT version FROM dataset_versions v WHERE v.tenant = $1 AND v.ingest_id = $3) AS version, NULL::text AS error
            FROM ingest_reports r WHERE r.tenant = $1 AND r.dataset = $2 AND r.ingest_id = $3
            UNION ALL
            SELECT 2, NULL, NULL, NULL, d.error FROM dead_letters d
            WHERE d.tenant = $1 AND d.stage IN ('router', 'ingest') AND d.event_id = $3
              AND EXISTS (SELECT 1 FROM event_archive a WHERE a.tenant = $1 AND a.id = $3 AND a.subject = $2)
            UNION ALL
            SELECT 3, NULL, NULL, NULL, NULL FROM event_archive a
            WHERE a.tenant = $1 AND a.id = $3 AND a.type = 'almanac.data.arrived' AND a.subject = $2
            ORDER BY rank LIMIT 1
            """, [tenant, dataset, id]).first else { return nil }
        if let accepted = r.text("accepted") {
            return .reported(accepted: accepted == "t", report: (try? JSONValue(parsing: r.text("report") ?? "{}")) ?? .object([:]),
                             version: try r.decodeIfPresent("version"))
        }
        if let error = r.text("error") { return .failed(error) }
        return .pending
    }
}
