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
import UnixSignals

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
        // Signals are watched from the first moment: one that comes while services start
        // stops everything started so far.
        let stopping = AsyncStream<Int32>.makeStream()
        let signalled = SignalFlag()
        // `up` supervises processes rather than running services: it reads the signals as a
        // sequence (swift-service-lifecycle's), flags the first for its start-up checkpoints and
        // passes them on to the supervision that follows.
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        let relay = Task {
            for await signal in signals {
                signalled.set(signal.rawValue)
                stopping.continuation.yield(signal.rawValue)
            }
        }
        defer { relay.cancel() }
        let paths = AlmanacPaths.discover()
        let deployment = LocalDeployment(
            options: .init(state: state, functionsDirectory: functions.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? paths.functions,
                           httpPort: httpPort, postgresPort: postgresPort, detach: detach,
                           topics: { installationTopics($0) }, environment: ProcessInfo.processInfo.environment),
            logger: Logger(label: "almanac.up"), signalled: signalled) { line in
            print(line)
            flushOutput()
        }
        do { _ = try await deployment.start() } catch let interrupted as LocalDeployment.Interrupted {
            throw ExitCode(128 + interrupted.signal)
        }
        if detach { return }
        await deployment.supervise(until: stopping.stream)
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
