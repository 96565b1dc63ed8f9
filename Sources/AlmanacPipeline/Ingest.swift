import AlmanacCore
import AlmanacPostgres
import Foundation

/// The folder data files must come from, one part per tenant (`<root>/<tenant>/<dataset>/<file>`):
/// `file://` paths in a tenant's data-arrival events are resolved (symlinks included) and
/// refused unless they lie inside that tenant's part.
public struct DropFolder: Sendable {
    /// The folder, resolved.
    public let root: URL

    /// Makes a drop folder (created when missing).
    public init(path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        root = URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL
    }

    /// The tenant's own part of the folder, `<root>/<tenant>`: its data arrivals may name
    /// files there and nowhere else (another tenant's files included).
    /// - Throws: `PipelineError` when the tenant's name is not a `Slug`.
    public func folder(of tenant: String) throws -> URL {
        if let problem = Slug.problem(tenant, what: "tenant", maxLength: Slug.maxTenantLength) { throw PipelineError(problem) }
        return root.appendingPathComponent(tenant, isDirectory: true)
    }

    /// The file a `file://` URL, an absolute path or a path relative to the tenant's folder names.
    /// - Throws: `PipelineError` when it lies outside the tenant's folder (symlinks are
    ///   followed first), is not a regular file, or is missing.
    public func resolve(_ location: String, tenant: String) throws -> URL {
        let own = try folder(of: tenant)
        var path = location
        if path.hasPrefix("file://") {
            guard let url = URL(string: path), url.isFileURL else { throw PipelineError("\"\(location)\" is not a valid file:// URL") }
            path = url.path
        } else if path.contains("://") {
            throw PipelineError("\"\(location)\" uses an unsupported scheme; give a file:// URL inside the drop folder or an http(s):// URL")
        }
        let candidate = path.hasPrefix("/") ? URL(fileURLWithPath: path) : own.appendingPathComponent(path)
        let resolved = candidate.resolvingSymlinksInPath().standardizedFileURL
        guard resolved.path.hasPrefix(own.path + "/") else {
            throw PipelineError("\(location) is outside the drop folder of tenant \(tenant), \(own.path); only files inside it are ingested")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: resolved.path, isDirectory: &isDirectory) else {
            throw PipelineError("\(location) does not exist")
        }
        guard !isDirectory.boolValue else { throw PipelineError("\(location) is a folder, not a file") }
        return resolved
    }
}

/// What an ingest found: counts, the first problems by line, and the verdict.
public struct IngestReport: Sendable, Equatable {
    /// One rejected row.
    public struct Problem: Sendable, Equatable {
        /// The line in the file (the header is line 1).
        public var line: Int
        /// The row's item, when it has one.
        public var item: String?
        /// What is wrong with it.
        public var reason: String
    }

    /// Data rows read.
    public var rowsRead = 0
    /// Rows rejected.
    public var rowsRejected = 0
    /// Accepted rows that add or change an observation.
    public var rowsChanged = 0
    /// Items among the accepted rows.
    public var items = 0
    /// The first 100 problems, by line.
    public var problems: [Problem] = []
    /// Why the whole file was rejected; nil when it was accepted.
    public var rejection: String?
    /// The earliest and latest accepted timestamps.
    public var firstTimestamp: Date?, lastTimestamp: Date?

    /// The report as JSON (for events and `ingest_reports`), with at most `problemLimit` problems.
    public func json(problemLimit: Int = 100) -> JSONValue {
        var o: [String: JSONValue] = [
            "rows_read": .number(Double(rowsRead)), "rows_rejected": .number(Double(rowsRejected)),
            "rows_changed": .number(Double(rowsChanged)), "items": .number(Double(items)),
            "problems": .array(problems.prefix(problemLimit).map { p in
                var e: [String: JSONValue] = ["line": .number(Double(p.line)), "reason": .string(p.reason)]
                if let item = p.item { e["item_id"] = .string(item) }
                return .object(e)
            }),
        ]
        if let rejection { o["reason"] = .string(rejection) }
        if let f = firstTimestamp { o["first_timestamp"] = .string(RFC3339.format(f)) }
        if let l = lastTimestamp { o["last_timestamp"] = .string(RFC3339.format(l)) }
        return .object(o)
    }
}

/// Loads one data file into a dataset as a new batch of observations, made visible with a
/// new dataset version in one transaction.
///
/// The batch is a table of its own (`observation_batch_<id>_<n>`), invisible to readers
/// until `promote` attaches it to `observation_rows` in the function's commit transaction:
/// a version appears exactly once, whole or not at all. `stage` fills it one of two ways:
///
/// - **Straight**: a file of the three required columns is streamed by `COPY` into the
///   batch table itself, Postgres casting every timestamp and value, while a
///   `CleanRowScanner` checks each row's shape (and the order of its keys) on the way.
///   Nothing is copied twice.
/// - **Checked**: any other file (related columns, quoting, a row the scanner or a cast
///   refuses, a duplicate key) goes by `COPY` into an unlogged scratch table of text
///   (`ingest_staging_<id>`), is checked there — as a whole when every row is clean,
///   otherwise row by row with each bad row's reason — and its good rows are inserted into
///   the batch table.
///
/// Either way, rows that equal the dataset's current observation are then taken out, so a
/// batch holds exactly what its version changed, and the same file twice makes nothing.
public struct Ingest: Sendable {
    /// The dataset.
    public let dataset: Dataset
    /// The data-arrival event id: the ingest's identity.
    public let id: String
    /// Where the data came from (for reports).
    public let source: String
    /// The data-arrival event's source: with the tenant and `id`, what names the event.
    public let eventSource: String
    /// The file's columns beyond the three required ones.
    public private(set) var relatedColumns: [String] = []
    /// How the rows were checked (decides where the scratch table's typed values are read from).
    private(set) var checked = Check.byRow
    /// The batch's number (its partition value), once its table exists.
    private(set) var batch: Int64?

    /// How the rows were checked.
    enum Check: Sendable {
        /// Row by row in the scratch table: each row's `ts`, `v` and `reason` are filled in.
        case byRow
        /// As a whole in the scratch table: every row has a common clean shape, casts, and is
        /// unique, so the typed values are cast as they are read and every row is accepted.
        case wholeFile
        /// On the way into the batch table (no scratch table).
        case straight
    }

    /// The required columns of the Amazon Forecast target time series schema.
    public static let requiredColumns = ["item_id", "timestamp", "target_value"]

    /// Makes an ingest.
    public init(dataset: Dataset, id: String, source: String, eventSource: String = "") {
        self.dataset = dataset
        self.id = id
        self.source = source
        self.eventSource = eventSource
    }

    /// A hash of the tenant, event source and id: two tenants' (or producers') ingests with
    /// the same event id never share a table.
    var tableKey: String { FNV1a.hex([dataset.tenant, eventSource, id].joined(separator: "\u{1F}")) }

    /// The scratch table's name: fixed letters and the ingest's hash, so it is a safe identifier.
    var stagingTable: String { "ingest_staging_" + tableKey }

    /// The prefix of this ingest's batch tables (one per attempt).
    var batchPrefix: String { "observation_batch_" + tableKey + "_" }

    /// The batch table's name.
    var batchTable: String { batchPrefix + String(batch ?? 0) }

    /// Loads the file into a batch table and checks every row.
    /// - Returns: the report; `rejection` is set when the file must be refused whole.
    public mutating func stage(file: URL, db: PostgresConnection) async throws -> IngestReport {
        var report = IngestReport()
        try await dropUnattachedBatches(db: db)
        let reader: DataFileReader
        do { reader = try DataFileReader(url: file, limit: dataset.maxFileBytes) } catch let e as PipelineError {
            report.rejection = e.message
            return report
        }
        let columns: [String]
        do { columns = try Self.columns(header: reader.headerLine) } catch let e as PipelineError {
            report.rejection = e.message
            return report
        }
        relatedColumns = columns.filter { !Self.requiredColumns.contains($0) }
        if relatedColumns.isEmpty, try await loadStraight(reader: reader, columns: columns, into: &report, db: db) {
            checked = .straight
        } else {
            guard try await loadChecked(reader: reader, columns: columns, into: &report, db: db) else { return report }
        }
        try await takeOutUnchanged(into: &report, db: db)
        return report
    }

    /// Drops batch tables an earlier attempt of this ingest left unattached (it was killed).
    func dropUnattachedBatches(db: PostgresConnection) async throws {
        let left = try await db.query("""
            SELECT c.relname AS name FROM pg_class c
            WHERE c.relkind = 'r' AND left(c.relname, length($1)) = $1 AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
            """, [batchPrefix])
        for row in left {
            // Names matched by the fixed prefix of letters, hex digits and a number.
            guard let name = row.text("name"), name.range(of: "^observation_batch_[0-9a-f]+_[0-9]+$", options: .regularExpression) != nil else { continue }
            try await db.runScript("DROP TABLE IF EXISTS \(name)")
        }
    }

    /// Makes a new, empty batch table (not yet a partition): its batch number is the default
    /// and a constraint, so attaching it needs no scan.
    mutating func createBatchTable(db: PostgresConnection) async throws {
        let next = try await db.query("SELECT nextval('observation_batch_ids') AS n")
        let n: Int64 = try next[0].decode("n")
        batch = n
        try await db.runScript("""
            CREATE TABLE \(batchTable) (LIKE observation_rows);
            ALTER TABLE \(batchTable) ALTER batch SET DEFAULT \(n), ADD CONSTRAINT \(batchTable)_batch CHECK (batch = \(n));
            """)
    }

    /// Drops the batch table (the file goes the checked way, or is refused).
    mutating func dropBatchTable(db: PostgresConnection) async throws {
        guard batch != nil else { return }
        try await db.runScript("DROP TABLE IF EXISTS \(batchTable)")
        batch = nil
    }

    /// Streams a file of the three required columns straight into a new batch table.
    /// - Returns: false (and no batch table) when the file needs the checked way.
    mutating func loadStraight(reader: DataFileReader, columns: [String], into report: inout IngestReport,
                               db: PostgresConnection) async throws -> Bool {
        try await createBatchTable(db: db)
        var scanner = CleanRowScanner(columns: columns, maxLineBytes: dataset.maxLineBytes)
        let names = columns.map { ["item_id": "item_id", "timestamp": "ts", "target_value": "value"][$0] ?? $0 }
        do {
            _ = try await db.copyIn("COPY \(batchTable) (\(names.joined(separator: ", "))) FROM STDIN WITH (FORMAT csv, HEADER true, ENCODING 'UTF8')") { writer in
                try await reader.stream { chunk in
                    scanner.feed(chunk)
                    guard scanner.clean else { throw NotClean() }
                    try await writer.write(chunk)
                }
                scanner.finish()
                guard scanner.clean else { throw NotClean() }
            }
        } catch let e where e is NotClean || e is PipelineError || (e as? PostgresError)?.sqlState != nil {
            // A row out of shape, a cast or the CSV itself failed, or the file cannot be read:
            // the checked way says what is wrong where.
            try await dropBatchTable(db: db)
            return false
        }
        let t = batchTable
        if scanner.duplicate || scanner.rows == 0 {
            try await dropBatchTable(db: db)
            return false
        }
        if scanner.keysMayRepeat {
            let repeated = try await db.query("SELECT EXISTS (SELECT 1 FROM \(t) GROUP BY item_id, ts HAVING count(*) > 1) AS any")
            if try repeated[0].decode("any", as: Bool.self) {
                try await dropBatchTable(db: db)
                return false
            }
        }
        // One shape throughout: the first and last as written, else as the database finds them.
        let span = scanner.oneShape
            ? try await db.query("SELECT $1::timestamptz AS first, $2::timestamptz AS last",
                                 [String(decoding: scanner.earliest, as: UTF8.self), String(decoding: scanner.latest, as: UTF8.self)])
            : try await db.query("SELECT min(ts) AS first, max(ts) AS last FROM \(t)")
        report.rowsRead = scanner.rows
        report.items = scanner.items.count
        report.firstTimestamp = try span[0].decodeIfPresent("first")
        report.lastTimestamp = try span[0].decodeIfPresent("last")
        return true
    }

    /// A row the scanner refused: the file goes the checked way.
    struct NotClean: Error {}

    /// Copies the file into the scratch table, checks it, and moves its good rows into a new
    /// batch table.
    /// - Returns: false when the file is refused (`report.rejection`); no batch table then.
    mutating func loadChecked(reader: DataFileReader, columns: [String], into report: inout IngestReport,
                              db: PostgresConnection) async throws -> Bool {
        let table = stagingTable
        // Identifiers below are the fixed table name and column names checked by `columns(header:)`.
        let definitions = columns.map { "\"\($0)\" text" }.joined(separator: ", ")
        try await db.runScript("""
            DROP TABLE IF EXISTS \(table);
            CREATE UNLOGGED TABLE \(table) (line bigint NOT NULL, \(definitions), flaw text,
                ts timestamptz, v float8, reason text);
            """)
        do {
            // The file is read strictly and written again as plain CSV: each record with its
            // line number and, when the reader found it bad, why.
            let list = columns.map { "\"\($0)\"" }.joined(separator: ", ")
            var csv = StrictCSV(columns: columns, maxLineBytes: dataset.maxLineBytes)
            try await db.copyIn("COPY \(table) (line, \(list), flaw) FROM STDIN WITH (FORMAT csv, ENCODING 'UTF8')") { writer in
                try await reader.stream { chunk in
                    var out = Data()
                    csv.feed(chunk, into: &out)
                    try await writer.write(out)
                }
                var out = Data()
                csv.finish(into: &out)
                try await writer.write(out)
            }
        } catch let e as PostgresError {
            report.rejection = "the file is not valid CSV for its header: \(e.message)"
        } catch let e as PipelineError {
            report.rejection = e.message
        }
        if report.rejection == nil {
            try await check(db: db)
            try await summarize(into: &report, db: db)
        }
        if report.rejection == nil {
            try await createBatchTable(db: db)
            _ = try await db.execute("""
                INSERT INTO \(batchTable) (item_id, ts, value, related)
                SELECT s.item_id, \(timestampSQL), \(valueSQL), \(relatedExpression) FROM \(table) s WHERE \(acceptedSQL)
                """)
        }
        try await db.runScript("DROP TABLE IF EXISTS \(table)")
        return report.rejection == nil
    }

    /// Takes out of the batch the rows equal to the dataset's current observations, and
    /// counts what is left (`rowsChanged`).
    func takeOutUnchanged(into report: inout IngestReport, db: PostgresConnection) async throws {
        let accepted = report.rowsRead - report.rowsRejected
        let current = try await db.query("SELECT EXISTS (SELECT 1 FROM observation_batches WHERE tenant = $1 AND dataset = $2) AS any",
                                         [dataset.tenant, dataset.name])
        guard try current[0].decode("any", as: Bool.self) else {
            report.rowsChanged = accepted
            return
        }
        let same = try await db.execute("""
            DELETE FROM \(batchTable) b USING dataset_observations($1, $2) o
            WHERE o.item_id = b.item_id AND o.ts = b.ts AND o.value = b.value AND o.related IS NOT DISTINCT FROM b.related
            """, [dataset.tenant, dataset.name])
        report.rowsChanged = accepted - same
    }

    /// The timestamps the row check accepts: ISO 8601 dates, with minutes, seconds and
    /// fractions, `Z` or an offset (a POSIX regular expression).
    static let timestampPattern = #"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$"#

    /// The shapes of the timestamps the whole-file check and the scanner accept, digits written as 0: ISO 8601
    /// dates with minutes or seconds (space or T), optionally in UTC (`Z`) or with an offset,
    /// and bare dates. All are accepted by the row check's pattern too.
    static let cleanTimestampShapes: [String] = {
        let times = ["0000-00-00 00:00", "0000-00-00 00:00:00", "0000-00-00T00:00", "0000-00-00T00:00:00"]
        let zones = ["", "Z", "+00:00", "-00:00", "+0000", "-0000", "+00", "-00"]
        return ["0000-00-00"] + times.flatMap { t in zones.map { t + $0 } }
    }()

    /// The values the whole-file check accepts: plain decimals (`CleanRowScanner.isPlainNumber`
    /// accepts the same), a subset of the row check's numbers.
    static let plainNumberPattern = #"^-?\d+(\.\d+)?([eE][+-]?\d+)?$"#

    /// Checks the scratch table: as a whole when every row is clean (one pass, no row written),
    /// otherwise row by row, marking each bad row with its reason.
    mutating func check(db: PostgresConnection) async throws {
        if try await isCleanAsAWhole(db: db) {
            checked = .wholeFile
            return
        }
        checked = .byRow
        try await checkEachRow(db: db)
    }

    /// Whether every row has an item id, a timestamp of a clean shape and a plain decimal
    /// number, every value casts, and no item and timestamp repeat. Any doubt (or a cast that
    /// fails) answers false, and the row check then says what is wrong where.
    func isCleanAsAWhole(db: PostgresConnection) async throws -> Bool {
        let t = stagingTable
        // The shapes are constants of this file, not input.
        let shapes = Self.cleanTimestampShapes.map { "'\($0)'" }.joined(separator: ", ")
        let misshapen = try await db.query("""
            SELECT count(*) AS n FROM \(t) WHERE NOT coalesce(flaw IS NULL AND item_id <> '' AND length(item_id) <= 200
                AND translate("timestamp", '0123456789', '0000000000') IN (\(shapes)) AND target_value ~ $1, false)
            """, [Self.plainNumberPattern])
        guard try misshapen[0].decode("n", as: Int64.self) == 0 else { return false }
        do {
            // Every timestamp and value is cast here (a date like 2026-13-40 or a value out of
            // range fails the statement); groups of more than one row are duplicates.
            let repeated = try await db.query("""
                SELECT count(*) AS n FROM (SELECT count(*) AS c, min(target_value::float8) AS v FROM \(t)
                    GROUP BY item_id, "timestamp"::timestamptz) g WHERE c > 1 OR v IS NULL
                """)
            return try repeated[0].decode("n", as: Int64.self) == 0
        } catch is PostgresError {
            return false
        }
    }

    /// A row's timestamp, value, and whether it is accepted, as SQL over the scratch table `s`.
    var timestampSQL: String { checked == .byRow ? "s.ts" : "s.\"timestamp\"::timestamptz" }
    var valueSQL: String { checked == .byRow ? "s.v" : "s.target_value::float8" }
    var acceptedSQL: String { checked == .byRow ? "s.reason IS NULL" : "true" }

    /// Marks each bad row with its reason, in the database.
    func checkEachRow(db: PostgresConnection) async throws {
        let t = stagingTable
        let timestampPattern = Self.timestampPattern
        let numberPattern = #"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"#
        _ = try await db.execute("""
            UPDATE \(t) SET ts = almanac_try_timestamptz(btrim("timestamp")), v = almanac_try_float8(target_value),
            reason = CASE
                WHEN flaw IS NOT NULL THEN flaw
                WHEN item_id IS NULL OR btrim(item_id) = '' THEN 'item_id is empty'
                WHEN length(item_id) > 200 THEN 'item_id is longer than 200 characters'
                WHEN "timestamp" IS NULL OR btrim("timestamp") = '' THEN 'timestamp is empty'
                WHEN btrim("timestamp") !~ $1 OR almanac_try_timestamptz(btrim("timestamp")) IS NULL
                    THEN 'timestamp "' || left("timestamp", 40) || '" is not YYYY-MM-DD[ HH:MM:SS] or ISO 8601'
                WHEN target_value IS NULL OR btrim(target_value) = '' THEN 'target_value is empty'
                WHEN lower(btrim(target_value)) IN ('nan', 'inf', '+inf', '-inf', 'infinity', '+infinity', '-infinity')
                    THEN 'target_value ' || btrim(target_value) || ' is not finite'
                WHEN target_value !~ $2 THEN 'target_value "' || left(target_value, 40) || '" is not a number'
                WHEN almanac_try_float8(target_value) IS NULL OR almanac_try_float8(target_value) IN ('Infinity', '-Infinity')
                    THEN 'target_value ' || left(target_value, 40) || ' is out of range'
            END
            """, [timestampPattern, numberPattern])
        _ = try await db.execute("""
            UPDATE \(t) s SET reason = 'duplicate of line ' || d.first || ' (same item_id and timestamp)'
            FROM (SELECT line, min(line) OVER (PARTITION BY item_id, ts) AS first FROM \(t) WHERE reason IS NULL) d
            WHERE s.line = d.line AND d.line <> d.first
            """)
    }

    /// Counts, the first problems and the verdict.
    func summarize(into report: inout IngestReport, db: PostgresConnection) async throws {
        let t = stagingTable
        let (ts, accepted) = (timestampSQL, acceptedSQL)
        let counts = try await db.query("""
            SELECT count(*) AS total, count(*) FILTER (WHERE NOT (\(accepted))) AS bad, count(DISTINCT item_id) FILTER (WHERE \(accepted)) AS items,
                   min(\(ts)) FILTER (WHERE \(accepted)) AS first, max(\(ts)) FILTER (WHERE \(accepted)) AS last
            FROM \(t) s
            """)
        report.rowsRead = try counts[0].decode("total")
        report.rowsRejected = try counts[0].decode("bad")
        report.items = try counts[0].decode("items")
        report.firstTimestamp = try counts[0].decodeIfPresent("first")
        report.lastTimestamp = try counts[0].decodeIfPresent("last")
        if checked == .byRow {
            let problems = try await db.query("SELECT line, left(item_id, 200) AS item_id, reason FROM \(t) WHERE reason IS NOT NULL ORDER BY line LIMIT 100")
            report.problems = try problems.map { IngestReport.Problem(line: try $0.decode("line"), item: $0.text("item_id"), reason: try $0.decode("reason")) }
        }
        if report.rowsRead == 0 {
            report.rejection = "the file has a header but no data rows"
        } else if report.rowsRejected == report.rowsRead {
            report.rejection = "every row was rejected (first: line \(report.problems.first?.line ?? 0): \(report.problems.first?.reason ?? ""))"
        } else if Double(report.rowsRejected) / Double(report.rowsRead) > dataset.maxErrorRate {
            report.rejection = "\(report.rowsRejected) of \(report.rowsRead) rows were rejected, above the dataset's limit of "
                + "\(Int(dataset.maxErrorRate * 100))%; fix the rows listed and send the file again"
        }
    }

    /// The related columns as one JSON object per row (NULL when there are none).
    var relatedExpression: String {
        relatedColumns.isEmpty ? "NULL::jsonb"
            : "jsonb_build_object(" + relatedColumns.map { "'\($0)', s.\"\($0)\"" }.joined(separator: ", ") + ")"
    }

    /// Makes the new version visible: attaches the batch to `observation_rows` with its
    /// `observation_batches` row, the version row and the report; a file that changes nothing
    /// records its report only (and its batch table is dropped). Run it in the function's
    /// commit transaction: should another ingest of the dataset commit the same version
    /// first, the unique version fails the transaction and the retry stages the file again.
    /// - Parameter version: the version number to create.
    public func promote(report: IngestReport, version: Int, in tx: PostgresTransaction) async throws {
        if report.rejection == nil && report.rowsChanged > 0, let batch {
            try await tx.execute("""
                INSERT INTO dataset_versions (tenant, dataset, version, ingest_id, source, rows_read, rows_rejected, rows_changed, items)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                """, [dataset.tenant, dataset.name, version, id, source, report.rowsRead, report.rowsRejected, report.rowsChanged, report.items])
            try await tx.execute("""
                INSERT INTO observation_batches (batch, tenant, dataset, version, ingest_id, rows) VALUES ($1, $2, $3, $4, $5, $6)
                """, [batch, dataset.tenant, dataset.name, version, id, report.rowsChanged])
            // The table name and batch number are this ingest's own (letters, hex and digits).
            try await tx.runScript("ALTER TABLE observation_rows ATTACH PARTITION \(batchTable) FOR VALUES IN (\(batch))")
        } else if batch != nil {
            try await tx.runScript("DROP TABLE IF EXISTS \(batchTable)")
        }
        try await recordReport(report, in: tx)
    }

    /// Stores the report (also for files refused before staging).
    public func recordReport(_ report: IngestReport, in tx: PostgresTransaction) async throws {
        try await tx.execute("""
            INSERT INTO ingest_reports (tenant, ingest_id, dataset, source, accepted, report) VALUES ($1, $2, $3, $4, $5, $6::jsonb)
            ON CONFLICT (tenant, ingest_id) DO NOTHING
            """, [dataset.tenant, id, dataset.name, source, report.rejection == nil, report.json().serialized()])
    }

    /// Drops the scratch and batch tables (after a rejection).
    public func discard(db: PostgresConnection) async throws {
        try await db.runScript("DROP TABLE IF EXISTS \(stagingTable)")
        if batch != nil { try await db.runScript("DROP TABLE IF EXISTS \(batchTable)") }
    }

    /// Up to `limit` characters of text for a message, control characters shown as `?`.
    static func printable(_ text: String, limit: Int = 120) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.prefix(limit).map { $0.value < 0x20 || $0.value == 0x7f ? "?" : $0 }))
    }

    /// The file's column names from its header line.
    /// - Throws: `PipelineError` for a missing required column, another delimiter, a
    ///   duplicate or an unusable name.
    static func columns(header: String) throws -> [String] {
        let trimmed = header.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw PipelineError("the file is empty; expected a header item_id,timestamp,target_value") }
        let names = trimmed.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: CharacterSet(charactersIn: " \"")).lowercased()
        }
        if names.count == 1, let d = [";", "\t", "|"].first(where: { trimmed.contains($0) }) {
            throw PipelineError("the header is separated by \(d == "\t" ? "tabs" : "\"\(d)\""), not commas; send comma-separated CSV")
        }
        for required in requiredColumns where !names.contains(required) {
            throw PipelineError("the header must name item_id, timestamp and target_value; \(required) is missing in \"\(printable(trimmed))\"")
        }
        var seen = Set<String>()
        for n in names {
            guard n.range(of: "^[a-z_][a-z0-9_]{0,62}$", options: .regularExpression) != nil, !["line", "ts", "v", "reason"].contains(n) else {
                throw PipelineError("column \"\(printable(n, limit: 70))\" is not usable: related columns need names of letters, digits and _ (not line, ts, v or reason)")
            }
            guard seen.insert(n).inserted else { throw PipelineError("column \(n) appears twice in the header") }
        }
        return names
    }
}

/// Reads a data file in chunks, gunzipping it when it starts with the gzip magic bytes.
struct DataFileReader: Sendable {
    let url: URL
    let gzip: Bool
    /// The most bytes read from the file (after decompression).
    let limit: Int64
    /// The first line, decoded as UTF-8 (BOM removed).
    let headerLine: String

    init(url: URL, limit: Int64 = Dataset.defaultMaxFileBytes) throws {
        self.url = url
        self.limit = limit
        guard let handle = FileHandle(forReadingAtPath: url.path) else { throw PipelineError("cannot open \(url.lastPathComponent)") }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 2)) ?? Data()
        gzip = head.count == 2 && head[head.startIndex] == 0x1f && head[head.startIndex + 1] == 0x8b
        if url.pathExtension.lowercased() == "gz" && !gzip {
            throw PipelineError("\(url.lastPathComponent) is named .gz but is not gzip (no 1f 8b header)")
        }
        var first = Data()
        try Self.chunks(url: url, gzip: gzip, limit: limit) { chunk in
            if let nl = chunk.firstIndex(of: 0x0a) {
                first.append(chunk[chunk.startIndex..<nl])
                return false
            }
            first.append(chunk)
            if first.count > 1 << 20 { throw PipelineError("the first line is longer than 1 MiB; is this a CSV file?") }
            return true
        }
        if first.starts(with: [0xef, 0xbb, 0xbf]) { first.removeFirst(3) }
        guard let text = String(data: first, encoding: .utf8) else {
            throw PipelineError("the header is not UTF-8 text; save the file as UTF-8 CSV")
        }
        headerLine = text
    }

    /// Passes the file's bytes (decompressed) to `body` in chunks of about 1 MiB.
    func stream(_ body: (Data) async throws -> Void) async throws {
        let source = try ChunkSource(url: url, gzip: gzip, limit: limit)
        while let chunk = try source.next() { try await body(chunk) }
    }

    /// Reads chunks synchronously; `each` returns false to stop.
    static func chunks(url: URL, gzip: Bool, limit: Int64, _ each: (Data) throws -> Bool) throws {
        let source = try ChunkSource(url: url, gzip: gzip, limit: limit)
        while let chunk = try source.next() {
            if try !each(chunk) { return }
        }
    }
}

/// A file's bytes in chunks of about 1 MiB (at most 4 MiB when inflated from gzip), with
/// a bound on the bytes read in all.
final class ChunkSource {
    private let handle: FileHandle
    private var inflater: GzipInflater?
    private let name: String
    private let limit: Int64
    private var delivered: Int64 = 0

    init(url: URL, gzip: Bool, limit: Int64) throws {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { throw PipelineError("cannot open \(url.lastPathComponent)") }
        self.handle = handle
        name = url.lastPathComponent
        self.limit = limit
        inflater = gzip ? try GzipInflater() : nil
    }

    deinit { try? handle.close() }

    /// The next non-empty chunk; nil at the end.
    /// - Throws: `PipelineError` past the limit, or for gzip data that is corrupt or cut short.
    func next() throws -> Data? {
        while true {
            let chunk: Data
            if let inflater {
                if inflater.needsInput {
                    let raw = try handle.read(upToCount: 1 << 20) ?? Data()
                    if raw.isEmpty {
                        if !inflater.finished { throw PipelineError("the gzip data in \(name) ends early; the file is truncated") }
                        return nil
                    }
                    inflater.push(raw)
                }
                chunk = try inflater.pull(max: 4 << 20)
            } else {
                chunk = try handle.read(upToCount: 1 << 20) ?? Data()
                if chunk.isEmpty { return nil }
            }
            delivered += Int64(chunk.count)
            if delivered > limit {
                throw PipelineError("\(name) holds more than \(limit) bytes\(inflater == nil ? "" : " once decompressed"); "
                                        + "the dataset's max_file_bytes bounds what one ingest reads")
            }
            if !chunk.isEmpty { return chunk }
        }
    }
}
