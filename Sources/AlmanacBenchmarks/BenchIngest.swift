import AlmanacPipeline
import AlmanacPostgres
import AlmanacFunctions
import AlmanacControlPlane
import AlmanacAPI
import ArgumentParser
import Foundation
import Logging

/// `almanac bench ingest`: the ingest path's throughput next to `psql \copy` of the same file.
struct BenchIngest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Measure ingest rows/s against psql \\copy of the same file into a plain table.",
        discussion: """
            Starts a private Postgres. Each round loads the file twice: with `psql \\copy` into a plain table \
            (item_id text, timestamp timestamptz, target_value float8: the baseline), and through Almanac's ingest \
            (staging into a batch table — straight by COPY for a clean file — and its promotion to a new version \
            of a fresh dataset, as the ingest function does). \
            Rounds alternate the order; the medians are reported. The last line is JSON.
            """)

    @Option(help: "The CSV file (item_id,timestamp,target_value; gzip accepted).") var file: String
    @Option(help: "Rounds (each loads the file once per method).") var rounds = 3

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let source = URL(fileURLWithPath: file)
        guard FileManager.default.fileExists(atPath: source.path) else { throw ValidationError("no file \(file)") }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("almanac-bench-ingest-\(getpid())").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        chmod(work, 0o755)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let pg = try EmbeddedPostgres(dataDirectory: "\(work)/pg", port: EmbeddedPostgres.freePort(), logFile: "\(work)/pg.log")
        try pg.start(logger: logger)
        defer { pg.stop(mode: "immediate") }
        let db = try await PostgresConnection.connect(url: pg.url)
        try await PostgresMigrator(directory: AlmanacPaths.discover().migrations).migrate(db, logger: logger)
        // psql runs as another process and must be able to read the file.
        let copy = "\(work)/data" + (source.pathExtension == "gz" ? ".csv.gz" : ".csv")
        try FileManager.default.copyItem(atPath: source.path, toPath: copy)
        chmod(copy, 0o644)

        var ours: [Double] = [], theirs: [Double] = []
        var rows = 0
        for round in 0..<rounds {
            for method in round % 2 == 0 ? ["psql", "almanac"] : ["almanac", "psql"] {
                if method == "psql" {
                    try await db.exec("DROP TABLE IF EXISTS plain_copy")
                    try await db.exec("CREATE TABLE plain_copy (item_id text, \"timestamp\" timestamptz, target_value float8)")
                    let started = ContinuousClock.now
                    let command = copy.hasSuffix(".gz")
                        ? "\\copy plain_copy FROM PROGRAM 'gzip -dc \(copy)' WITH (FORMAT csv, HEADER true)"
                        : "\\copy plain_copy FROM '\(copy)' WITH (FORMAT csv, HEADER true)"
                    let r = try Subprocess.run("\(pg.binDirectory)/psql", ["-X", "-q", "-d", pg.url, "-c", command])
                    guard r.status == 0 else { throw ValidationError("psql \\copy failed: \(r.output)") }
                    theirs.append(seconds(ContinuousClock.now - started))
                } else {
                    let name = "bench\(round)"
                    try await DatasetStore.create(Dataset(tenant: "bench", name: name, horizon: 1), in: db)
                    let started = ContinuousClock.now
                    var ingest = Ingest(dataset: Dataset(tenant: "bench", name: name, horizon: 1), id: "bench-\(round)", source: copy)
                    let report = try await ingest.stage(file: URL(fileURLWithPath: copy), db: db)
                    if let why = report.rejection { throw ValidationError("ingest rejected the file: \(why)") }
                    let staged = ingest
                    try await db.transaction { tx in try await staged.promote(report: report, version: 1, in: tx) }
                    ours.append(seconds(ContinuousClock.now - started))
                    rows = report.rowsRead
                    FileHandle.standardError.write(Data("round \(round + 1): \(rows) rows, \(report.rowsRejected) rejected\n".utf8))
                }
            }
        }
        await db.close()
        let oursRate = Double(rows) / median(ours), theirRate = Double(rows) / median(theirs)
        print("ingest:     median \(String(format: "%.2f", median(ours))) s over \(rounds) rounds (\(ours.map { String(format: "%.2f", $0) }.joined(separator: ", ")))")
        print("psql \\copy: median \(String(format: "%.2f", median(theirs))) s (\(theirs.map { String(format: "%.2f", $0) }.joined(separator: ", ")))")
        print("{\"rows\":\(rows),\"rows_per_s\":\(Int(oursRate)),\"psql_copy_rows_per_s\":\(Int(theirRate)),\"ratio\":\(String(format: "%.3f", oursRate / theirRate))}")
    }

    func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
    func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
}
