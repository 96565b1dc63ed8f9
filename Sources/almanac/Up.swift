import AlmanacCore
import AlmanacHTTP
import AlmanacKafka
import AlmanacPipeline
import AlmanacPostgres
import AlmanacFunctions
import AlmanacControlPlane
import AlmanacAPI
import AlmanacBenchmarks
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle

/// `almanac up`: the embedded default (or real services), supervised.
struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start Almanac: Postgres, Kafka, the router, the launcher and the HTTP ingress.",
        discussion: """
            With no DATABASE_URL, a private Postgres runs from .almanac/postgres (initdb/pg_ctl; as the postgres user \
            when run as root). With no KAFKA_BROKERS, librdkafka's mock cluster runs in its own process: it speaks the \
            real Kafka protocol on loopback but keeps events in memory, so what it held is gone when it stops \
            (the outbox and the event archive in Postgres are what survive; `almanac replay` re-publishes). \
            Each service runs in its own process and is restarted if it dies. State lives under .almanac/ in the \
            current directory; .almanac/endpoints.env tells clients where everything is. Ctrl-C stops it all gracefully.
            """)

    @Option(help: "The ingress port on 127.0.0.1.") var httpPort: Int = 8787
    @Option(help: "The folder of function manifests (default: functions/ of the project).") var functions: String?
    @Option(help: "The state folder.") var state: String = ".almanac"
    @Option(help: "The embedded Postgres port (kept in the state folder after the first run).") var postgresPort: Int?
    @Flag(help: "Exit once everything is up and endpoints.env is written (services keep running in the background).") var detach = false

    func run() async throws {
        let logger = Logger(label: "almanac.up")
        // Signals are watched from the first moment: one that comes while services start
        // stops everything started so far.
        let stopping = AsyncStream<Int32>.makeStream()
        let signalled = StopSignal()
        // `up` supervises processes rather than running services, and its start-up checkpoints
        // must see a signal the moment it arrives: the flag is set on a dispatch queue, not by a
        // task that a busy cooperative pool could hold back (an async signal sequence let
        // endpoints.env be written after a SIGTERM under load).
        let trap = SignalTrap(signals: [SIGINT, SIGTERM]) { signal in
            signalled.set(signal)
            stopping.continuation.yield(signal)
        }
        defer { trap.cancel() }
        let fm = FileManager.default
        let statePath = URL(fileURLWithPath: state).standardizedFileURL.path
        try fm.createDirectory(atPath: "\(statePath)/logs", withIntermediateDirectories: true)
        // A file from an earlier run must not tell clients that this one is ready.
        try? fm.removeItem(atPath: "\(statePath)/endpoints.env")
        let paths = AlmanacPaths.discover()
        let functionsDir = functions.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? paths.functions
        let env = ProcessInfo.processInfo.environment
        let supervisor = Supervisor(logDirectory: "\(statePath)/logs")
        // Children stop when `up` goes, unless it detaches and leaves them running.
        let childEnvironment = detach ? [:] : ["ALMANAC_SUPERVISOR_PID": "\(getpid())"]
        var embedded: EmbeddedPostgres?
        /// Stops whatever has started, when a signal came during start-up.
        func abandonIfSignalled() async throws {
            guard let signal = signalled.value else { return }
            say("stopping   (signal \(signal) during start-up): stopping what was started")
            await supervisor.stopAll()
            embedded?.stop()
            throw ExitCode(128 + signal)
        }

        // Postgres
        let databaseURL: String
        if let url = env["DATABASE_URL"], !url.isEmpty {
            databaseURL = url
            say("postgres   using DATABASE_URL (\(PostgresConnection.redact(url)))")
        } else {
            let portFile = "\(statePath)/postgres.port"
            let port = postgresPort ?? (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
                ?? EmbeddedPostgres.freePort()
            try "\(port)\n".write(toFile: portFile, atomically: true, encoding: .utf8)
            let pg = try EmbeddedPostgres(dataDirectory: "\(statePath)/postgres", port: port, logFile: "\(statePath)/logs/postgres.log")
            say("postgres   starting the embedded server in \(state)/postgres on 127.0.0.1:\(port)")
            embedded = pg
            try pg.start(logger: logger)
            databaseURL = pg.url
        }
        try await abandonIfSignalled()
        let db = try await PostgresConnection.connect(url: databaseURL, logger: logger)
        let applied = try await PostgresMigrator(directory: paths.migrations).migrate(db, logger: logger)
        say("postgres   schema up to date\(applied.isEmpty ? "" : " (applied \(applied.map(String.init).joined(separator: ", ")))")")

        // The default tenant's token, kept across runs.
        let tokenFile = "\(statePath)/token"
        let token: String
        if let t = try? String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty {
            token = t
        } else {
            token = TenantDirectory.newToken()
            try token.write(toFile: tokenFile, atomically: true, encoding: .utf8)
            chmod(tokenFile, 0o600)
        }
        try await TenantDirectory.ensure(tenant: "default", token: token, in: db)
        try await abandonIfSignalled()

        // Kafka
        let manifests = try FunctionManifest.loadAll(from: functionsDir)
        let topics = installationTopics(manifests)
        var brokers: String
        let usingMock = (env["KAFKA_BROKERS"] ?? "").isEmpty
        if !usingMock {
            brokers = env["KAFKA_BROKERS"]!
            say("kafka      using KAFKA_BROKERS (\(brokers))")
            let admin = try KafkaAdmin(configuration: KafkaConfiguration.fromEnvironment(env)!)
            try await admin.createTopics(topics, partitions: 4)
        } else {
            brokers = try await startBroker(supervisor: supervisor, statePath: statePath, functionsDir: functionsDir,
                                            environment: childEnvironment)
            say("kafka      librdkafka mock cluster on \(brokers) (in memory: gone when it stops)")
        }
        try await abandonIfSignalled()

        let endpoints = Endpoints(kafkaBrokers: brokers, databaseURL: databaseURL, http: "http://127.0.0.1:\(httpPort)", token: token)
        await startServe(supervisor: supervisor, endpoints: endpoints, functionsDir: functionsDir, statePath: statePath,
                         environment: childEnvironment)
        try await waitForHTTP(port: httpPort, unless: signalled)
        try await abandonIfSignalled()
        // Only now that Postgres, the broker and the ingress all answer do clients learn where they are.
        try writeEndpoints(endpoints, statePath: statePath)
        say("functions  \(manifests.map(\.name).joined(separator: ", "))")
        say("ready      endpoints in \(state)/endpoints.env:")
        // The file holds the real values (mode 0600); the screen never shows a database password.
        var shown = endpoints
        shown.databaseURL = PostgresConnection.redact(endpoints.databaseURL)
        print(shown.envFile, terminator: "")
        flushOutput()
        if detach { return }

        // Supervise until a signal.
        if usingMock {
            await supervisor.onRestart("broker") { [self] in
                // A new mock broker has a new port and none of the old events: tell everyone.
                guard let fresh = try? await readBrokerReady(statePath: statePath) else { return }
                var updated = endpoints
                updated.kafkaBrokers = fresh
                say("kafka      the mock broker restarted on \(fresh); restarting the router")
                try? FileManager.default.removeItem(atPath: "\(statePath)/endpoints.env")
                await supervisor.stop("serve")
                await startServe(supervisor: supervisor, endpoints: updated, functionsDir: functionsDir, statePath: statePath,
                                 environment: childEnvironment)
                try? await waitForHTTP(port: httpPort, unless: signalled)
                try? writeEndpoints(updated, statePath: statePath)
            }
        }
        let watched = embedded
        let pgWatch = Task { [self] in
            while !Task.isCancelled, let pg = watched {
                try? await Task.sleep(for: .seconds(2))
                if (try? pg.isRunning()) == false {
                    say("postgres   not running; starting it again")
                    try? pg.start(logger: logger)
                }
            }
        }
        for await signal in stopping.stream {
            say("stopping   (signal \(signal)): the router and functions finish what they hold")
            break
        }
        pgWatch.cancel()
        await supervisor.stop("serve", grace: .seconds(40))
        await supervisor.stopAll()
        embedded?.stop()
        say("stopped    state kept in \(state)/; `almanac up` again finds it")
    }

    func say(_ line: String) {
        print(line)
        flushOutput()
    }

    func writeEndpoints(_ e: Endpoints, statePath: String) throws {
        try e.envFile.write(toFile: "\(statePath)/endpoints.env", atomically: true, encoding: .utf8)
        chmod("\(statePath)/endpoints.env", 0o600)
    }

    func startBroker(supervisor: Supervisor, statePath: String, functionsDir: String, environment: [String: String]) async throws -> String {
        try? FileManager.default.removeItem(atPath: "\(statePath)/broker.ready")
        await supervisor.start(name: "broker", arguments: ["broker", "--ready-file", "\(statePath)/broker.ready", "--functions", functionsDir],
                               environment: environment) {
            try? FileManager.default.removeItem(atPath: "\(statePath)/broker.ready")
        }
        return try await readBrokerReady(statePath: statePath)
    }

    func readBrokerReady(statePath: String) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOfFile: "\(statePath)/broker.ready", encoding: .utf8),
               !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                return text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw EmbeddedServiceError("the mock Kafka broker did not start within 30 s; see \(statePath)/logs/broker.log")
    }

    func startServe(supervisor: Supervisor, endpoints: Endpoints, functionsDir: String, statePath: String, environment: [String: String]) async {
        await supervisor.start(name: "serve", arguments: ["serve", "--http-port", "\(httpPort)", "--functions", functionsDir,
                                                          "--log-dir", "\(statePath)/logs", "--drop", "\(statePath)/drop",
                                                          "--export", "\(statePath)/export"],
                               environment: environment.merging(["DATABASE_URL": endpoints.databaseURL, "KAFKA_BROKERS": endpoints.kafkaBrokers]) { _, b in b })
    }

    func waitForHTTP(port: Int, unless signalled: StopSignal) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline && signalled.value == nil {
            if let r = try? await HTTPClient.shared.send(HTTPClientRequest(method: "GET", url: "http://127.0.0.1:\(port)/healthz", timeout: 2)),
               r.status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        if signalled.value != nil { return }
        throw EmbeddedServiceError("the router did not start listening on port \(port) within 60 s; see .almanac/logs/serve.log")
    }
}

/// `almanac serve`: the router, launcher and ingress in one process (started by `up`).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the router, the launcher and the HTTP ingress (started by `almanac up`).")

    @Option var httpPort: Int = 8787
    @Option(help: "The address the ingress listens on (0.0.0.0 in a container).") var httpHost: String = "127.0.0.1"
    @Option(help: "The parts to run, comma-separated: router, launcher, ingress, watcher (default: all; on Kubernetes the router and the ingress run apart and KEDA launches functions).")
    var parts: String = ControlPlane.Part.allCases.map(\.rawValue).joined(separator: ",")
    @Option var functions: String?
    @Option var logDir: String = ".almanac/logs"
    @Option(help: "The drop folder: a file at DROP/<tenant>/<dataset>/<file> is announced as that tenant's almanac.data.arrived.") var drop: String = ".almanac/drop"
    @Option(help: "The export folder for forecast CSVs and charts (EXPORT/<tenant>/<dataset>/).") var export: String = ".almanac/export"

    func run() async throws {
        JSONLogHandler.bootstrap()
        let logger = Logger(label: "almanac.serve")
        let env = ProcessInfo.processInfo.environment
        guard let db = env["DATABASE_URL"], let kafka = KafkaConfiguration.fromEnvironment(env) else {
            throw ValidationError("serve needs DATABASE_URL and KAFKA_BROKERS")
        }
        // A signal before the control plane exists ends the process at once (the default action);
        // after, the service group below stops it gracefully.
        let paths = AlmanacPaths.discover()
        // On real Kafka that must keep what it acknowledges, nothing starts on topics that would not.
        if let replication = try KafkaAdmin.requiredReplication(env) {
            let admin = try KafkaAdmin(configuration: kafka)
            let topics = installationTopics(try FunctionManifest.loadAll(from: functions ?? paths.functions), env: env)
            for warning in try await admin.requireDurability(topics: topics, replication: replication) {
                logger.warning("kafka durability", metadata: ["warning": "\(warning)"])
            }
        }
        var chosen = Set<ControlPlane.Part>()
        for name in parts.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            guard let part = ControlPlane.Part(rawValue: name) else {
                throw ValidationError("--parts: unknown part \(EventLimits.quoted(name)); the parts are \(ControlPlane.Part.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            chosen.insert(part)
        }
        guard !chosen.isEmpty else { throw ValidationError("--parts names no part") }
        var configuration = ControlPlane.Configuration(
            kafka: kafka, databaseURL: db, paths: paths, functionsDirectory: functions, logDirectory: logDir,
            httpHost: httpHost, httpPort: httpPort, gpus: GPUInventory.detect(),
            instanceEnvironment: ["ALMANAC_DROP_DIR": absolute(drop), "ALMANAC_EXPORT_DIR": absolute(export)],
            watchedDropFolder: chosen.contains(.watcher) ? absolute(drop) : nil,
            routes: chosen.contains(.ingress) ? try await Self.routes(env, db: db, kafka: kafka, drop: absolute(drop), functions: functions) : [])
        configuration.parts = chosen
        let plane = try await ControlPlane(configuration: configuration, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let supervisor = env["ALMANAC_SUPERVISOR_PID"].flatMap(Int32.init) {
            // `up` is gone (killed): nothing may outlive it. Listed first, it is stopped last.
            let watch = OrphanWatch(parent: supervisor)
            if watch.isOrphaned { throw ExitCode(1) }
            services.append(watch.shutsDownGroup)
        }
        services.append(.init(service: plane, serviceName: "control-plane"))
        try await ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
    }
}

extension Serve {
    /// The `/v1` API (watching the functions of `functions`, or the project's), the console, and the relay of bucket notifications from `ALMANAC_S3_NOTIFICATIONS_TOPIC` when it is set.
    static func routes(_ env: [String: String], db: String, kafka: KafkaConfiguration, drop: String, functions: String?) async throws -> [any IngressRoutes] {
        let paths = AlmanacPaths.discover()
        let board = FunctionBoard(manifests: try FunctionManifest.loadAll(from: functions ?? paths.functions),
                                  admin: try? KafkaAdmin(configuration: kafka))
        var routes: [any IngressRoutes] = [try await ForecastAPI.connect(url: db, dropFolder: drop).watching(board),
                                           ConsoleRoutes(folder: paths.console)]
        for topic in S3NotificationRelay.configuredTopics(env) {
            routes.append(S3NotificationRelay(topic: topic, kafka: kafka, databaseURL: db))
        }
        return routes
    }
}

/// A path made absolute against the working directory (function instances run elsewhere), its folder created.
func absolute(_ path: String) -> String {
    let url = URL(fileURLWithPath: path).standardizedFileURL
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url.path
}

/// `almanac broker`: librdkafka's mock cluster in a process of its own (started by `up`).
struct Broker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run librdkafka's mock Kafka cluster (started by `almanac up`).")

    @Option(help: "Where to write the bootstrap servers once the topics exist.") var readyFile: String
    @Option(help: "Function manifests whose input topics to create.") var functions: String?
    @Option(help: "Partitions per topic.") var partitions: Int = 4

    func run() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        let manifests = try FunctionManifest.loadAll(from: functions ?? AlmanacPaths.discover().functions)
        for t in installationTopics(manifests) {
            try cluster.createTopic(t, partitions: partitions)
        }
        try cluster.bootstrapServers.write(toFile: readyFile, atomically: true, encoding: .utf8)
        print("mock Kafka cluster on \(cluster.bootstrapServers)")
        flushOutput()
        // Runs until SIGINT or SIGTERM, or until `up` is gone.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let supervisor = ProcessInfo.processInfo.environment["ALMANAC_SUPERVISOR_PID"].flatMap(Int32.init) {
            services.append(OrphanWatch(parent: supervisor).shutsDownGroup)
        }
        services.append(.init(service: ShutdownWait(), serviceName: "broker"))
        try await ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "almanac.broker"))).run()
        withExtendedLifetime(cluster) {}
    }
}

/// `almanac function exec`: the exec adapter, running a non-Swift function under the SDK.
struct FunctionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "function", abstract: "Run a function instance (started by the launcher).",
                                                    subcommands: [Exec.self, BenchSink.self])

    struct Exec: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run a `run: {command: …}` function through the JSON-lines exec adapter.")
        @Option(help: "The function's function.yaml.") var manifest: String

        func run() async throws {
            let m = try FunctionManifest(file: manifest)
            guard case .command(let command) = m.run else {
                throw ValidationError("\(manifest): run must be {command: [...]} for the exec adapter")
            }
            setenv("ALMANAC_FUNCTION_MANIFEST", manifest, 1)
            await FunctionMain.run(ExecFunctionHandler(command: command, directory: m.directory))
        }
    }
}


/// Flushes standard output so supervisors and pipes see lines at once.
func flushOutput() {
    fflush(nil)
}

/// The last signal `up` received, if any (set from the signal queue).
final class StopSignal: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var signal: Int32?
    /// Records a signal.
    func set(_ s: Int32) { lock.withLock { signal = signal ?? s } }
    /// The first signal received.
    var value: Int32? { lock.withLock { signal } }
}

/// Calls a closure on a dispatch queue when the process receives one of the signals (their
/// default action is replaced): for `up`, whose start-up checks for a signal between steps.
final class SignalTrap: @unchecked Sendable {
    // Created once in init, only cancelled afterwards.
    private var sources: [DispatchSourceSignal] = []

    init(signals: [Int32], _ action: @escaping @Sendable (Int32) -> Void) {
        for s in signals {
            signal(s, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: s, queue: .global())
            source.setEventHandler { action(s) }
            source.resume()
            sources.append(source)
        }
    }

    /// Stops trapping.
    func cancel() { sources.forEach { $0.cancel() } }
}
