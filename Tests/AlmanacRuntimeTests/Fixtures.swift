import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import AlmanacPipeline
import AlmanacAPI
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Logging
import ServiceLifecycle
import Testing

/// One real Postgres server for the whole test run, started with initdb/pg_ctl in a
/// temporary folder and stopped when the test process exits; every test gets its own database.
actor TestPostgres {
    static let shared = TestPostgres()
    private var server: EmbeddedPostgres?
    private var counter = 0

    /// The one server, started by the first caller; the others wait for that start (the
    /// actor is re-entered while it runs).
    func start() async throws -> EmbeddedPostgres {
        if let server { return server }
        if let starting { return try await starting.value }
        let task = Task { try await TestPostgres.startServer() }
        starting = task
        let pg = try await task.value
        server = pg
        return pg
    }

    private var starting: Task<EmbeddedPostgres, Error>?

    private static func startServer() async throws -> EmbeddedPostgres {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("almanac-tests-\(getpid())").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        chmod(base, 0o755)
        // A scratch server: the tests create a database each, and flushing every one to disk
        // stalled new connections for seconds on a busy machine.
        let pg = try EmbeddedPostgres(dataDirectory: "\(base)/pg", port: EmbeddedPostgres.freePort(), logFile: "\(base)/pg.log", durable: false)
        try await offThePool { try pg.start(logger: Logger(label: "test.postgres")) }
        TestPostgres.stopAtExit(pg)
        return pg
    }

    /// A new, migrated database and its URL.
    func freshDatabase() async throws -> String {
        let pg = try await start()
        counter += 1
        let name = "t\(getpid())_\(counter)"
        try await offThePool { try pg.createDatabase(name) }
        let url = pg.url(database: name)
        try await TestPostgres.prepare(url)
        return url
    }

    /// A Postgres server of the test's own (one it may restart), with a prepared database.
    static func privateServer() async throws -> (server: EmbeddedPostgres, url: String) {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("almanac-pg-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        chmod(base, 0o755)
        let pg = try EmbeddedPostgres(dataDirectory: "\(base)/pg", port: EmbeddedPostgres.freePort(), logFile: "\(base)/pg.log")
        try await offThePool {
            try pg.start(logger: Logger(label: "test.postgres"))
            try pg.createDatabase("t")
        }
        let url = pg.url(database: "t")
        try await prepare(url)
        return (pg, url)
    }

    /// Migrates a database and adds the test functions' tables.
    static func prepare(_ url: String) async throws {
        let db = try await PostgresConnection.connect(url: url)
        try await PostgresMigrator(directory: TestPaths.root + "/infra/migrations").migrate(db, logger: Logger(label: "test"))
        try await db.runScript("""
            CREATE TABLE test_effects (function text NOT NULL, event_id text NOT NULL, n integer, gpu text,
                                       instance text, started_at timestamptz, handled_at timestamptz NOT NULL DEFAULT clock_timestamp());
            CREATE TABLE test_flags (name text PRIMARY KEY);
            CREATE TABLE test_direct (event_id text NOT NULL, attempt integer NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
            """)
        await db.close()
    }

    nonisolated(unsafe) static var dataDirectoryToStop: String?
    nonisolated(unsafe) static var binDirectory: String?

    static func stopAtExit(_ pg: EmbeddedPostgres) {
        dataDirectoryToStop = pg.dataDirectory
        binDirectory = pg.binDirectory
        atexit {
            guard let dir = TestPostgres.dataDirectoryToStop, let bin = TestPostgres.binDirectory else { return }
            let args = ["\(bin)/pg_ctl", "-D", dir, "-m", "immediate", "stop"]
            _ = try? Subprocess.run(getuid() == 0 ? "/usr/sbin/runuser" : args[0], getuid() == 0 ? ["-u", "postgres", "--"] + args : Array(args.dropFirst()))
        }
    }
}

/// Runs blocking work (a child process to completion) on a thread of its own rather than on
/// Swift's cooperative pool, which has one thread per core: blocked there, it would starve
/// every test running beside it.
func offThePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { cont in
        Thread.detachNewThread { cont.resume(with: Result { try work() }) }
    }
}

/// Paths of the checkout and the built executables.
enum TestPaths {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The folder with `almanac` and `almanac-testfn`: beside the test bundle.
    static let binaries: String = {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        // On Linux the runner is `<products>/AlmanacPackageTests.xctest`; some runners nest deeper.
        for _ in 0..<4 where !FileManager.default.fileExists(atPath: dir.appendingPathComponent("almanac-testfn").path) {
            dir.deleteLastPathComponent()
        }
        return dir.path
    }()
}

/// A function manifest for the test function `almanac-testfn`.
struct TestFunction {
    var name: String
    var subscribe: String
    var mode = "record"
    var emit: String? = nil
    var concurrency = 1
    var timeout = "10s"
    var idle = "2s"
    var maxAttempts = 3
    var gpu = "none"
    var sleepMs = 0
    var command: [String]? = nil
    var files: [String: String] = [:]

    var yaml: String {
        let run = command.map { "{ command: [\($0.map { "\"\($0)\"" }.joined(separator: ", "))] }" } ?? "{ executable: almanac-testfn }"
        return """
            name: \(name)
            run: \(run)
            subscriptions:
              - type: [\(subscribe)]
            concurrency: \(concurrency)
            timeout: \(timeout)
            idleTimeout: \(idle)
            retries: { maxAttempts: \(maxAttempts), initialBackoff: 50ms, maxBackoff: 200ms }
            resources: { gpu: \(gpu) }
            environment:
              TESTFN_MODE: \(mode)
              TESTFN_EMIT: "\(emit ?? "")"
              TESTFN_SLEEP_MS: \(sleepMs)
            """
    }
}

/// A whole deployment for one test: its own database, mock Kafka cluster, manifests and
/// event schemas, and the router + launcher + ingress running in this process. Function
/// instances are real processes started by the launcher.
final class TestDeployment: @unchecked Sendable {
    let cluster: KafkaMockCluster
    let databaseURL: String
    let db: PostgresConnection
    let producer: KafkaProducer
    let directory: String
    let manifests: [FunctionManifest]
    var plane: ControlPlane?
    var planeGroup: ServiceGroup?
    var planeTask: Task<Void, Error>?
    /// Set when the control plane's run ended (it should not, before `shutdown`).
    let planeEnded = TestFlag()
    let logger: Logger

    /// Sets up everything but the control plane.
    /// - Parameter schemas: event type → JSON Schema text, written to the deployment's events/.
    /// - Parameter databaseURL: reuse another deployment's database (a restart with a new broker).
    /// - Parameter pipeline: names of the repository's own functions (`functions/<name>`) to deploy
    ///   too, with every schema of the repository's `events/`.
    init(functions: [TestFunction], pipeline: [String] = [], schemas: [String: String] = [:], partitions: Int = 2,
         databaseURL: String? = nil) async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        self.logger = logger
        if let databaseURL { self.databaseURL = databaseURL } else { self.databaseURL = try await TestPostgres.shared.freshDatabase() }
        db = try await PostgresConnection.connect(url: self.databaseURL)
        cluster = try KafkaMockCluster(brokers: 1)
        for t in [Outbox.busTopic, DeadLetter.topic] + (functions.map(\.name) + pipeline).map({ FunctionManifest.inputTopic(for: $0) }) {
            try cluster.createTopic(t, partitions: partitions)
        }
        producer = try KafkaProducer(configuration: cluster.configuration)
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("almanac-deploy-\(UUID().uuidString.prefix(8))").path
        let fm = FileManager.default
        try fm.createDirectory(atPath: "\(directory)/functions", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: "\(directory)/events", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: "\(directory)/logs", withIntermediateDirectories: true)
        for f in functions {
            let dir = "\(directory)/functions/\(f.name)"
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try f.yaml.write(toFile: "\(dir)/function.yaml", atomically: true, encoding: .utf8)
            for (name, text) in f.files { try text.write(toFile: "\(dir)/\(name)", atomically: true, encoding: .utf8) }
        }
        for name in pipeline {
            // The manifest and the program files (train-deep's main.py) the exec adapter runs.
            try fm.createDirectory(atPath: "\(directory)/functions/\(name)", withIntermediateDirectories: true)
            for file in try fm.contentsOfDirectory(atPath: "\(TestPaths.root)/functions/\(name)") where !file.hasSuffix(".swift") {
                try fm.copyItem(atPath: "\(TestPaths.root)/functions/\(name)/\(file)", toPath: "\(directory)/functions/\(name)/\(file)")
            }
        }
        if !pipeline.isEmpty {
            for file in try fm.contentsOfDirectory(atPath: "\(TestPaths.root)/events") where file.hasSuffix(".schema.json") {
                try fm.copyItem(atPath: "\(TestPaths.root)/events/\(file)", toPath: "\(directory)/events/\(file)")
            }
        }
        try fm.createDirectory(atPath: "\(directory)/drop", withIntermediateDirectories: true)
        for (type, schema) in schemas {
            try schema.write(toFile: "\(directory)/events/\(type).schema.json", atomically: true, encoding: .utf8)
        }
        manifests = try FunctionManifest.loadAll(from: "\(directory)/functions")
    }

    /// The deployment's drop folder (ingest reads data files from it).
    var dropDirectory: String { "\(directory)/drop" }

    var paths: AlmanacPaths {
        AlmanacPaths(root: directory, binaries: TestPaths.binaries)
    }

    var configuration: ControlPlane.Configuration {
        ControlPlane.Configuration(kafka: cluster.configuration, databaseURL: databaseURL, paths: paths,
                                   functionsDirectory: "\(directory)/functions", logDirectory: "\(directory)/logs",
                                   httpPort: 0, gpus: gpus,
                                   instanceEnvironment: ["ALMANAC_EVENTS_DIR": "\(directory)/events", "ALMANAC_DROP_DIR": dropDirectory,
                                                         "ALMANAC_EXPORT_DIR": exportDirectory].merging(environment) { _, b in b },
                                   watchedDropFolder: watchDropFolder ? dropDirectory : nil)
    }

    /// The deployment's export folder (the export function writes CSVs and charts there).
    var exportDirectory: String { "\(directory)/export" }
    /// More variables for every instance.
    var environment: [String: String] = [:]
    /// Whether the control plane watches the drop folder.
    var watchDropFolder = false

    var gpus = GPUInventory(slots: [])

    /// Whether the ingress serves the `/v1` API too.
    var withAPI = false
    /// Requests a second per tenant, when not the default.
    var rateLimit: Double?
    var api: ForecastAPI?
    /// More routes (or background relays) on the ingress's server.
    var extraRoutes: [any IngressRoutes] = []
    /// The control plane's parts, when not all (as on Kubernetes: no launcher).
    var parts: Set<ControlPlane.Part>?

    /// Starts the router, the launcher and the ingress in this process.
    func startControlPlane() async throws {
        var configuration = configuration
        if let rateLimit { configuration.rateLimit = rateLimit }
        if withAPI {
            let board = FunctionBoard(manifests: try FunctionManifest.loadAll(from: configuration.functionsDirectory),
                                      admin: try? KafkaAdmin(configuration: configuration.kafka))
            let api = try await ForecastAPI.connect(url: databaseURL, connections: 2, dropFolder: dropDirectory, allowPrivateWebhooks: true)
                .watching(board)
            self.api = api
            configuration.routes = [api, ConsoleRoutes(folder: AlmanacPaths.discover().console)]
        }
        configuration.routes += extraRoutes
        if let parts { configuration.parts = parts }
        let plane = try await ControlPlane(configuration: configuration, logger: logger)
        self.plane = plane
        let ended = planeEnded
        let group = ServiceGroup(services: [plane], logger: logger)
        planeGroup = group
        planeTask = Task {
            defer { ended.set() }
            try await group.run()
        }
    }

    /// Stops the control plane and every instance.
    func shutdown() async {
        // Graceful: the router finishes its batch, the launcher stops every instance.
        await planeGroup?.triggerGracefulShutdown()
        _ = try? await planeTask?.value
        await api?.close()
        await db.close()
    }

    /// Publishes an event to the bus and waits for the acknowledgement.
    func publish(_ event: CloudEvent) async throws {
        let r = event.kafkaBinary()
        try await producer.send(topic: Outbox.busTopic, key: r.key, value: r.value, headers: r.headers)
    }

    /// Publishes a raw record to the bus (or another topic).
    func publishRaw(key: Data? = nil, value: Data?, headers: [(String, Data)] = [], topic: String = Outbox.busTopic) async throws {
        try await producer.send(topic: topic, key: key, value: value, headers: headers)
    }

    /// Polls a count query until it reaches `expected` (or the time runs out) and returns the last count.
    @discardableResult
    func waitForCount(_ sql: String, _ params: [(any PostgresEncodable)?] = [], atLeast expected: Int, timeout: Duration = .seconds(60)) async throws -> Int {
        let deadline = ContinuousClock.now + timeout
        var last = -1
        while ContinuousClock.now < deadline {
            last = try await count(sql, params)
            if last >= expected { return last }
            try await Task.sleep(for: .milliseconds(100))
        }
        return last
    }

    /// Polls a count until it reaches `expected`, for as long as it keeps growing: it gives up
    /// only when the count has not moved for `stall` (or after `cap`), so a slow, busy machine
    /// is waited for while a count that stopped short — something lost — still fails.
    /// - Returns: the last count.
    @discardableResult
    func waitForProgress(_ sql: String, _ params: [(any PostgresEncodable)?] = [], atLeast expected: Int,
                         stall: Duration = .seconds(60), cap: Duration = .seconds(1200)) async throws -> Int {
        let end = ContinuousClock.now + cap
        var last = -1, movedAt = ContinuousClock.now
        while ContinuousClock.now < end {
            let n = try await count(sql, params)
            if n >= expected { return n }
            if n != last { (last, movedAt) = (n, ContinuousClock.now) }
            if ContinuousClock.now - movedAt > stall { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return last
    }

    func count(_ sql: String, _ params: [(any PostgresEncodable)?] = []) async throws -> Int {
        Int(try await db.query(sql, params).first?.decode("n", as: Int64.self) ?? 0)
    }

    /// Runs the `almanac` command against this deployment's database and cluster. With
    /// `token`, its tenant commands speak this deployment's `/v1` API as that token's tenant;
    /// with `remote`, the command gets no database or Kafka address at all, as on a machine
    /// that reaches the installation over HTTP only.
    /// - Returns: its exit status and what it printed (stdout and stderr together).
    func almanac(_ arguments: [String], token: String? = nil, remote: Bool = false,
                 environment extra: [String: String] = [:]) async throws -> (status: Int32, output: String) {
        var env = ProcessInfo.processInfo.environment
        for key in ["ALMANAC_HTTP", "ALMANAC_TOKEN", "DATABASE_URL", "KAFKA_BROKERS"] { env[key] = nil }
        if !remote {
            env["DATABASE_URL"] = databaseURL
            env["KAFKA_BROKERS"] = cluster.bootstrapServers
        }
        if plane != nil { env["ALMANAC_HTTP"] = try await ingressURL() }
        env["ALMANAC_TOKEN"] = token
        env.merge(extra) { _, b in b }
        let environment = env
        return try await offThePool { try self.runAlmanac(arguments, environment: environment) }
    }

    private func runAlmanac(_ arguments: [String], environment: [String: String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "\(TestPaths.binaries)/almanac")
        p.arguments = arguments
        p.environment = environment
        p.currentDirectoryURL = URL(fileURLWithPath: directory)
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// Waits until a condition on the launcher holds.
    func waitForLauncher(timeout: Duration = .seconds(30), _ condition: (Launcher.Snapshot) -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let snap = await plane?.launcher.snapshot(), condition(snap) { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// The ingress's base URL, once it listens.
    func ingressURL() async throws -> String {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let port = plane?.boundHTTPPort { return "http://127.0.0.1:\(port)" }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw PostgresError(.protocolViolation, "the ingress did not listen within 30 s", query: nil)
    }

    /// The log file of a function's instances.
    func log(_ function: String) -> String {
        (try? String(contentsOfFile: "\(directory)/logs/\(function).log", encoding: .utf8)) ?? ""
    }
}

/// An event for the test functions.
func testEvent(_ type: String, n: Int, subject: String = "ds") -> CloudEvent {
    var e = CloudEvent(source: "test", type: type, subject: subject, json: ["n": .number(Double(n))])
    e.traceparent = CloudEvent.newTraceparent()
    return e
}

/// A flag set once from any thread (a test's "stop now" between tasks).
final class TestFlag: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var value = false
    /// Sets the flag.
    func set() { lock.withLock { value = true } }
    /// Whether it was set.
    var isSet: Bool { lock.withLock { value } }
}
