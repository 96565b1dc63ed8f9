import AlmanacCore
import AlmanacPostgres
import AlmanacFunctions
import Foundation

/// The ingest function: on `almanac.data.arrived`, loads the named file (a `file://` path in the
/// tenant's part of the drop folder, an `http(s)://` URL fetched with libcurl, or an `s3://`
/// object fetched, signed, through the tenant's source rule) into the dataset and
/// emits `almanac.dataset.imported`, or `almanac.dataset.rejected` with the report when the
/// file is refused (the dataset then stays as it was).
///
/// Staging runs before the commit, into a batch table named by the event id that no reader
/// sees (a retry drops it and starts again); the promotion to a new version (attaching the
/// batch) is the function's effect, committed with the event's processed mark.
public struct IngestFunction: EventHandler {
    /// Where files may come from.
    public let drop: DropFolder
    /// How http(s) URLs and S3 objects are fetched.
    public let fetcher: DataFetcher
    /// Where tenants' S3 credentials are found (`S3Credentials`).
    let environment: [String: String]

    /// Makes the handler.
    public init(drop: DropFolder, fetcher: DataFetcher = DataFetcher(), environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.drop = drop
        self.fetcher = fetcher
        self.environment = environment
    }

    /// Ingests one data arrival.
    public func handle(_ arrived: DataArrived, event: CloudEvent, context: FunctionContext) async throws {
        let (name, location) = (arrived.dataset, arrived.url)
        let db = try context.database
        guard let dataset = try await DatasetStore.find(tenant: event.tenant, name: name, in: db) else {
            var report = IngestReport()
            report.rejection = "dataset \(name) does not exist for tenant \(event.tenant); create it with `almanac datasets create \(name) --horizon H`"
            return reject(Ingest(dataset: Dataset(tenant: event.tenant, name: name, horizon: 1), id: event.id, source: location, eventSource: event.source), report, context)
        }
        var ingest = Ingest(dataset: dataset, id: event.id, source: location, eventSource: event.source)
        let file: URL
        let scheme = location.lowercased()
        let fetched = scheme.hasPrefix("http://") || scheme.hasPrefix("https://") || scheme.hasPrefix("s3://")
        do {
            if scheme.hasPrefix("s3://") {
                file = try await fetchObject(location, dataset: dataset, id: event.id, db: db)
            } else if fetched {
                file = try await fetcher.fetch(location, id: event.id, maxBytes: Int(clamping: dataset.maxFileBytes))
            } else {
                file = try drop.resolve(location, tenant: event.tenant)
            }
        } catch let e as PipelineError {
            var report = IngestReport()
            report.rejection = e.message
            return reject(ingest, report, context)
        }
        defer { if fetched { try? FileManager.default.removeItem(at: file) } }
        let report = try await ingest.stage(file: file, db: db)
        guard report.rejection == nil else {
            try await ingest.discard(db: db)
            return reject(ingest, report, context)
        }
        let version = try await DatasetSeries.latestVersion(of: dataset, in: db) + (report.rowsChanged > 0 ? 1 : 0)
        let staged = ingest
        context.write { tx in try await staged.promote(report: report, version: version, in: tx) }
        context.emit(DatasetImported(
            dataset: dataset.name, version: version, source: location, rowsRead: report.rowsRead, rowsRejected: report.rowsRejected,
            rowsChanged: report.rowsChanged, items: report.items, firstTimestamp: report.firstTimestamp.map(RFC3339.format),
            lastTimestamp: report.lastTimestamp.map(RFC3339.format), problems: report.eventProblems), subject: dataset.name)
        context.logger.info("dataset imported", metadata: [
            "dataset": "\(dataset.name)", "version": "\(version)", "rows": "\(report.rowsRead)",
            "rejected": "\(report.rowsRejected)", "changed": "\(report.rowsChanged)",
        ])
    }

    /// Fetches `s3://bucket/key` through the tenant's source rule that covers it (endpoint,
    /// region, addressing, credentials), bounded by the dataset's `max_file_bytes`.
    func fetchObject(_ location: String, dataset: Dataset, id: String, db: PostgresConnection) async throws -> URL {
        let object = try S3Object(location: location)
        guard let source = try await S3Sources.match(bucket: object.bucket, key: object.key, tenant: dataset.tenant, in: db) else {
            throw PipelineError("tenant \(dataset.tenant) has no S3 source rule covering \(object.location); add one with "
                                    + "`almanac s3-sources add \(dataset.name) --bucket \(object.bucket) --endpoint URL --credentials NAME`")
        }
        let credentials = try S3Credentials.resolve(source.credentials, tenant: dataset.tenant, environment: environment)
        return try await fetcher.fetch(object, from: source, credentials: credentials, id: id, maxBytes: Int(clamping: dataset.maxFileBytes))
    }

    /// Records the report and emits `almanac.dataset.rejected`; nothing else changes.
    func reject(_ ingest: Ingest, _ report: IngestReport, _ context: FunctionContext) {
        context.write { tx in try await ingest.recordReport(report, in: tx) }
        context.emit(DatasetRejected(dataset: ingest.dataset.name, source: ingest.source, reason: report.rejection ?? "the file was refused",
                                     rowsRead: report.rowsRead, rowsRejected: report.rowsRejected, problems: report.eventProblems),
                     subject: ingest.dataset.name)
        context.logger.warning("data file rejected", metadata: ["dataset": "\(ingest.dataset.name)", "reason": "\(report.rejection ?? "")"])
    }
}
