import AlmanacFunctions
import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import Foundation
import Logging
import ServiceLifecycle

/// Endpoints of a running Almanac: what `.almanac/endpoints.env` holds.
public struct Endpoints: Sendable, Equatable {
    /// Kafka bootstrap servers.
    public var kafkaBrokers: String
    /// The Postgres URL.
    public var databaseURL: String
    /// The ingress base URL; events are POSTed to `<http>/events`.
    public var http: String
    /// The default tenant's bearer token.
    public var token: String

    /// Makes endpoints.
    public init(kafkaBrokers: String, databaseURL: String, http: String, token: String) {
        self.kafkaBrokers = kafkaBrokers
        self.databaseURL = databaseURL
        self.http = http
        self.token = token
    }

    /// Shell `KEY=value` lines.
    public var envFile: String {
        "KAFKA_BROKERS=\(kafkaBrokers)\nDATABASE_URL=\(databaseURL)\nALMANAC_HTTP=\(http)\nALMANAC_TOKEN=\(token)\n"
    }

    /// Parses `KEY=value` lines (quotes around values are removed).
    public static func parse(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            guard !t.hasPrefix("#"), let eq = t.firstIndex(of: "=") else { continue }
            var key = String(t[..<eq])
            if key.hasPrefix("export ") { key = String(key.dropFirst(7)) }
            var value = String(t[t.index(after: eq)...])
            if value.count >= 2, let f = value.first, f == "\"" || f == "'", value.last == f { value = String(value.dropFirst().dropLast()) }
            out[key] = value
        }
        return out
    }

    /// The process environment, with anything missing filled from `.almanac/endpoints.env` in the working directory.
    public static func clientEnvironment(stateDirectory: String = ".almanac") -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        if let text = try? String(contentsOfFile: "\(stateDirectory)/endpoints.env", encoding: .utf8) {
            for (k, v) in parse(text) where (env[k] ?? "").isEmpty { env[k] = v }
        }
        return env
    }
}

/// The router, the launcher and the HTTP ingress of one deployment, run together (`almanac serve`).
public final class ControlPlane: Service {
    /// What it needs.
    public struct Configuration: Sendable {
        /// Kafka.
        public var kafka: KafkaConfiguration
        /// Postgres URL.
        public var databaseURL: String
        /// Files.
        public var paths: AlmanacPaths
        /// Where manifests are read from (`functions/` by default).
        public var functionsDirectory: String
        /// Where instance logs go.
        public var logDirectory: String
        /// Ingress address.
        public var httpHost: String
        /// Ingress port (0: any free port).
        public var httpPort: Int
        /// GPU slots.
        public var gpus: GPUInventory
        /// Variables every instance gets besides DATABASE_URL and KAFKA_BROKERS.
        public var instanceEnvironment: [String: String]
        /// Whether several routers share the bus as a consumer group. Off by default: one
        /// router takes every partition directly, so a restarted router resumes in
        /// milliseconds instead of waiting for the group to notice its dead predecessor
        /// (the session timeout). `ALMANAC_ROUTER_GROUP=1` turns it on for replicas.
        public var routerGroup: Bool
        /// A drop folder to watch: files at `<folder>/<tenant>/<dataset>/<file>` are announced
        /// as that tenant's `almanac.data.arrived` (nil: no watcher).
        public var watchedDropFolder: String?
        /// More routes on the ingress's server (the forecasting pipeline's `/v1` API).
        public var routes: [any IngressRoutes]
        /// Requests a second each tenant may make of the ingress.
        public var rateLimit: Double
        /// The parts this process runs: all of them locally; on Kubernetes the router and the
        /// ingress run as Deployments of their own and KEDA takes the launcher's role.
        public var parts: Set<Part> = Set(Part.allCases)

        /// Makes a configuration.
        public init(kafka: KafkaConfiguration, databaseURL: String, paths: AlmanacPaths, functionsDirectory: String? = nil,
                    logDirectory: String, httpHost: String = "127.0.0.1", httpPort: Int = 0, gpus: GPUInventory = .init(slots: []),
                    instanceEnvironment: [String: String] = [:], watchedDropFolder: String? = nil,
                    routerGroup: Bool = ProcessInfo.processInfo.environment["ALMANAC_ROUTER_GROUP"] == "1",
                    routes: [any IngressRoutes] = [], rateLimit: Double = RateLimiter.defaultRate) {
            self.routes = routes
            self.rateLimit = rateLimit
            self.kafka = kafka
            self.databaseURL = databaseURL
            self.paths = paths
            self.functionsDirectory = functionsDirectory ?? paths.functions
            self.logDirectory = logDirectory
            self.httpHost = httpHost
            self.httpPort = httpPort
            self.gpus = gpus
            self.instanceEnvironment = instanceEnvironment
            self.routerGroup = routerGroup
            self.watchedDropFolder = watchedDropFolder
        }
    }

    /// A part of the control plane a process may run.
    public enum Part: String, CaseIterable, Sendable {
        /// The router with the scheduler (timed events, relays) and the reconciler.
        case router
        /// The launcher (starts function instances on lag; KEDA's role on Kubernetes).
        case launcher
        /// The `/v1` API and the console on the HTTP server, with their background relays
        /// (the server itself, with `/events` and the probes, runs with every part).
        case ingress
        /// The drop-folder watcher.
        case watcher
    }

    let configuration: Configuration
    let logger: Logger
    /// The launcher (for status and tests).
    public let launcher: Launcher
    /// The router.
    public let router: EventRouter
    let ingress: EventIngress
    let database: PostgresConnection
    /// The manifests in force.
    public let manifests: [FunctionManifest]
    private let httpPort = PortBox()
    let scheduler: Scheduler
    let watcher: DropFolderWatcher?
    let reconciler: Reconciler

    /// Connects to everything and loads the manifests and schemas.
    /// - Throws: `ConfigurationError` for a bad manifest or schema, or a Postgres/Kafka error.
    public init(configuration: Configuration, logger: Logger) async throws {
        self.configuration = configuration
        self.logger = logger
        let manifests = try FunctionManifest.loadAll(from: configuration.functionsDirectory)
        self.manifests = manifests
        let schemas = try EventSchemaRegistry(directory: URL(fileURLWithPath: configuration.paths.events))
        let db = try await PostgresConnection.connect(url: configuration.databaseURL, applicationName: "almanac-router", logger: logger)
        let launcherDB = try await PostgresConnection.connect(url: configuration.databaseURL, applicationName: "almanac-launcher", logger: logger)
        let ingressDB = try await PostgresConnection.connect(url: configuration.databaseURL, applicationName: "almanac-ingress", logger: logger)
        let archiveDB = try await PostgresConnection.connect(url: configuration.databaseURL, applicationName: "almanac-ingress-archive", logger: logger)
        self.database = db
        let producer = try KafkaProducer(configuration: configuration.kafka)
        await producer.warm(topics: [Outbox.busTopic, DeadLetter.topic] + manifests.map(\.inputTopic))
        let admin = try KafkaAdmin(configuration: configuration.kafka)
        var env = configuration.instanceEnvironment
        env["DATABASE_URL"] = configuration.databaseURL
        env["KAFKA_BROKERS"] = configuration.kafka.brokers
        let launcher = Launcher(manifests: manifests, admin: admin, paths: configuration.paths, gpus: configuration.gpus,
                                instanceEnvironment: env, logDirectory: configuration.logDirectory, database: launcherDB, logger: logger)
        self.launcher = launcher
        // A process without the router part (the ingress on Kubernetes) must not join the
        // router's group, nor fetch the bus for nobody: its router consumes no topic.
        let routing = configuration.parts.contains(.router)
        let consumer = try KafkaConsumer(configuration: configuration.kafka, groupID: EventRouter.consumerGroup,
                                         topics: routing ? [Outbox.busTopic] : [],
                                         assignment: routing && configuration.routerGroup ? .group : .all)
        router = EventRouter(manifests: manifests, schemas: schemas, database: db, producer: producer, source: consumer, logger: logger) { names in
            if !names.isEmpty { launcher.poke(names) }
        }
        scheduler = Scheduler(databaseURL: configuration.databaseURL, producer: producer, logger: logger)
        watcher = configuration.watchedDropFolder.map { DropFolderWatcher(folder: $0, producer: producer, logger: logger) }
        let statsDB = ingressDB
        reconciler = Reconciler(manifests: manifests, database: db, producer: producer, admin: admin, logger: logger)
        ingress = EventIngress(producer: producer, tenants: TenantDirectory(database: ingressDB), archive: archiveDB, logger: logger, ready: {
            (try? await statsDB.query("SELECT 1", [])) != nil
        }, extraMetrics: {
            await ControlPlane.databaseMetrics(statsDB)
        }, routes: configuration.routes, rateLimit: configuration.rateLimit)
    }

    /// The port the ingress listens on, once it does.
    public var boundHTTPPort: Int? { httpPort.value }

    /// Runs the parts this process has (router and scheduler, launcher, HTTP server, drop
    /// folder watcher, the routes' background work) as one `ServiceGroup` until it is cancelled
    /// or shut down gracefully: on graceful shutdown (SIGTERM in `almanac serve`, or the group
    /// that runs the control plane) the launcher first stops every instance gracefully (each
    /// finishes its event in hand), then the background work, the watcher and the HTTP server
    /// stop, and the router finishes the batch in hand. The first part to end, or to fail,
    /// ends them all.
    public func run() async throws {
        let parts = configuration.parts
        // A broker that came back empty is made whole from Postgres before anything flows.
        if parts.contains(.router) { _ = try await reconciler.run() }
        var services: [any Service] = []
        if parts.contains(.router) { services += [router, scheduler] as [any Service] }
        // The HTTP server runs with every part: a router alone still answers /healthz,
        // /readyz and /metrics (its probes); only the ingress part adds the `/v1` routes.
        services.append(ingress.application(host: configuration.httpHost, port: configuration.httpPort) { [httpPort, logger] port in
            httpPort.set(port)
            logger.info("ingress listening", metadata: ["port": "\(port)"])
        })
        if parts.contains(.watcher), let watcher { services.append(watcher) }
        for work in parts.contains(.ingress) ? configuration.routes.compactMap({ $0.background(ingress: ingress) }) : [] {
            services.append(BackgroundWork(work))
        }
        // A group shuts its services down one by one in reverse order: the launcher, listed
        // last, goes first, so that its instances get SIGTERM at once and finish their events in
        // hand while the rest winds down (a part stuck on a dead broker cannot hold them up).
        if parts.contains(.launcher) { services.append(launcher) }
        try await ServiceGroup(services: services, logger: logger).run()
    }

    /// Invocation, dead-letter and instance figures read from Postgres (they are written by many processes).
    static func databaseMetrics(_ db: PostgresConnection) async -> String {
        var out = ""
        if let rows = try? await RuntimeBoard.invocationTotals(in: db) {
            out += "# HELP almanac_invocations_recorded_total Invocations recorded in Postgres by function and outcome\n# TYPE almanac_invocations_recorded_total counter\n"
            for r in rows { out += "almanac_invocations_recorded_total{function=\"\(r.function)\",outcome=\"\(r.outcome)\"} \(r.count)\n" }
            out += "# HELP almanac_invocation_seconds_recorded_total Handler time recorded in Postgres by function and outcome\n# TYPE almanac_invocation_seconds_recorded_total counter\n"
            for r in rows { out += "almanac_invocation_seconds_recorded_total{function=\"\(r.function)\",outcome=\"\(r.outcome)\"} \(r.seconds)\n" }
        }
        if let rows = try? await DeadLetterStore.openByStage(in: db) {
            out += "# HELP almanac_dead_letters_open Dead letters not yet redriven, by stage\n# TYPE almanac_dead_letters_open gauge\n"
            for r in rows { out += "almanac_dead_letters_open{stage=\"\(r.stage)\"} \(r.count)\n" }
        }
        return out
    }
}

final class PortBox: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var port: Int?
    func set(_ p: Int) { lock.withLock { port = p } }
    var value: Int? { lock.withLock { port } }
}

/// Work a route runs beside the server until the group shuts down (e.g. an S3 queue poller):
/// it is cancelled on graceful shutdown, and its ending on its own does not end the group.
struct BackgroundWork: Service {
    let work: @Sendable () async -> Void

    init(_ work: @escaping @Sendable () async -> Void) { self.work = work }

    func run() async {
        await cancelWhenGracefulShutdown {
            await self.work()
            try? await gracefulShutdown()
        }
    }
}
