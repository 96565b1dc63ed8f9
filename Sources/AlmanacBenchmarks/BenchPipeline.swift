import AlmanacCore
import AlmanacKafka
import AlmanacPipeline
import AlmanacPostgres
import AlmanacFunctions
import AlmanacControlPlane
import AlmanacAPI
import ArgumentParser
import Foundation
import Hummingbird
import Logging

/// `almanac bench pipeline`: the wall time of the whole chain, data arrival → webhook.
struct BenchPipeline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Measure the whole chain, from a data arrival to the forecast's webhook.",
        discussion: """
            Starts a private Postgres, librdkafka's mock cluster and the control plane with the pipeline's functions \
            (built beside this executable: run `swift build -c release` first), and a local webhook receiver. \
            The file is dropped into a fresh dataset and its almanac.data.arrived published; the clock stops when \
            the receiver has the almanac.forecast.exported webhook. Prints the time of each step from the event \
            archive; the last line is JSON.
            """)

    @Option(help: "The CSV file (item_id,timestamp,target_value; gzip accepted).") var file: String
    @Option(help: "Steps to forecast.") var horizon: Int
    @Option(help: "hourly, daily, weekly, … (default: inferred).") var frequency: String?

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let source = URL(fileURLWithPath: file)
        guard FileManager.default.fileExists(atPath: source.path) else { throw ValidationError("no file \(file)") }
        let paths = AlmanacPaths.discover()
        for f in ["fn-ingest", "fn-train", "fn-forecast", "fn-export", "fn-monitor", "fn-notify"]
        where !FileManager.default.isExecutableFile(atPath: "\(paths.binaries)/\(f)") {
            throw ValidationError("\(paths.binaries)/\(f) is missing; build every product first (swift build -c release)")
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("almanac-bench-pipeline-\(getpid())").path
        try FileManager.default.createDirectory(atPath: "\(work)/drop/default/bench", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(work)/logs", withIntermediateDirectories: true)
        chmod(work, 0o755)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let pg = try EmbeddedPostgres(dataDirectory: "\(work)/pg", port: EmbeddedPostgres.freePort(), logFile: "\(work)/pg.log")
        try pg.start(logger: logger)
        defer { pg.stop(mode: "immediate") }
        let db = try await PostgresConnection.connect(url: pg.url)
        try await PostgresMigrator(directory: paths.migrations).migrate(db, logger: logger)
        let cluster = try KafkaMockCluster(brokers: 1)
        let manifests = try FunctionManifest.loadAll(from: paths.functions)
        for t in [Outbox.busTopic, DeadLetter.topic] + manifests.map(\.inputTopic) { try cluster.createTopic(t, partitions: 2) }

        // The receiver: notes when the forecast's webhook arrives.
        let arrived = AsyncStream<Date>.makeStream()
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            var r = request
            let body = try await r.collectBody(upTo: 1 << 24)
            if (try? JSONValue(parsing: Data(buffer: body)))?["type"]?.stringValue == "almanac.forecast.exported" {
                arrived.continuation.yield(Date())
            }
            return Response(status: .noContent)
        }
        let ports = AsyncStream<Int>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { ports.continuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        defer { server.cancel() }
        var port = 0
        for await p in ports.stream { port = p; break }

        try await DatasetStore.create(Dataset(tenant: "default", name: "bench", horizon: horizon, frequency: frequency), in: db)
        _ = try await Webhooks.add(tenant: "default", url: "http://127.0.0.1:\(port)/hook", eventTypes: ["almanac.forecast.exported"],
                                   allowPrivate: true, in: db)
        let plane = try await ControlPlane(configuration: .init(
            kafka: cluster.configuration, databaseURL: pg.url, paths: paths, logDirectory: "\(work)/logs",
            instanceEnvironment: ["ALMANAC_DROP_DIR": "\(work)/drop", "ALMANAC_EXPORT_DIR": "\(work)/export"]), logger: logger)
        let running = BackgroundServices([plane], logger: logger)
        let copy = "\(work)/drop/default/bench/" + source.lastPathComponent
        try FileManager.default.copyItem(atPath: source.path, toPath: copy)

        var event = CloudEvent(id: UUID().uuidString.lowercased(), source: "almanac/bench", type: "almanac.data.arrived", subject: "bench",
                               json: ["dataset": "bench", "url": .string("file://" + copy)])
        event.traceparent = CloudEvent.newTraceparent()
        let producer = try KafkaProducer(configuration: cluster.configuration)
        let started = Date()
        let record = event.kafkaBinary()
        try await producer.send(topic: Outbox.busTopic, key: record.key, value: record.value, headers: record.headers)
        let timeout = Task {
            try await Task.sleep(for: .seconds(1800))
            arrived.continuation.finish()
        }
        var finished: Date?
        for await at in arrived.stream { finished = at; break }
        timeout.cancel()
        guard let finished else { throw ValidationError("no webhook within 30 minutes; see \(work)/logs") }
        let seconds = finished.timeIntervalSince(started)

        let steps = try await db.query("""
            SELECT type, extract(epoch FROM min(archived_at))::float8 AS at FROM event_archive GROUP BY type ORDER BY min(archived_at)
            """)
        for s in steps {
            let at: Double = try s.decode("at")
            print(String(format: "%8.2f s  %@", at - started.timeIntervalSince1970, s.text("type") ?? ""))
        }
        print(String(format: "%8.2f s  webhook received", seconds))
        let items = try await db.query("SELECT count(DISTINCT item_id)::bigint AS n FROM observations")
        let n: Int = try items[0].decode("n")
        try? await running.shutdown()
        await db.close()
        print("{\"seconds\":\(String(format: "%.2f", seconds)),\"items\":\(n),\"horizon\":\(horizon)}")
    }
}
