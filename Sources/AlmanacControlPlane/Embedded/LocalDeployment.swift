import AlmanacCore
import AlmanacFunctions
import AlmanacHTTP
import AlmanacKafka
import AlmanacPostgres
import Foundation
import Logging

/// The embedded default that `almanac up` runs, assembled and supervised: a private Postgres
/// (or `DATABASE_URL`) with the schema migrated and the default tenant's token kept in the
/// state folder; the librdkafka mock cluster in a process of its own (or `KAFKA_BROKERS`, its
/// topics created); `almanac serve` (router, launcher, ingress) in another; `endpoints.env`
/// written only once all of them answer. While it runs, a restarted mock broker (empty, on a
/// new port) restarts `serve` against it, and a stopped embedded Postgres is started again.
///
/// A signal flagged during start-up stops what was started and ends `start` with `Interrupted`.
public final class LocalDeployment: @unchecked Sendable {
    /// What to run.
    public struct Options: Sendable {
        /// The state folder as the user named it (for messages), and where it is.
        public var state: String, statePath: String
        /// The function manifests.
        public var functionsDirectory: String
        /// The ingress port on 127.0.0.1.
        public var httpPort: Int
        /// The embedded Postgres port (kept in the state folder after the first run).
        public var postgresPort: Int?
        /// Whether the services outlive this process (`--detach`).
        public var detach: Bool
        /// The topics an installation of these functions runs on.
        public var topics: @Sendable ([FunctionManifest]) -> [String]
        /// `DATABASE_URL` and `KAFKA_BROKERS`, when set, mean real services.
        public var environment: [String: String]

        /// Makes options.
        public init(state: String, functionsDirectory: String, httpPort: Int, postgresPort: Int?, detach: Bool,
                    topics: @escaping @Sendable ([FunctionManifest]) -> [String], environment: [String: String]) {
            self.state = state
            self.statePath = URL(fileURLWithPath: state).standardizedFileURL.path
            self.functionsDirectory = functionsDirectory
            self.httpPort = httpPort
            self.postgresPort = postgresPort
            self.detach = detach
            self.topics = topics
            self.environment = environment
        }
    }

    /// Start-up was interrupted by `signal`; what had started was stopped.
    public struct Interrupted: Error, Sendable {
        /// The signal.
        public let signal: Int32
    }

    let options: Options
    let logger: Logger
    let signalled: SignalFlag
    let say: @Sendable (String) -> Void
    let supervisor: Supervisor
    // Set during `start`, read by `supervise` after it (one task at a time).
    var embedded: EmbeddedPostgres?
    var endpoints: Endpoints?
    var usingMock = true

    /// Makes a deployment; `say` prints a line of progress, `signalled` is checked between steps.
    public init(options: Options, logger: Logger, signalled: SignalFlag, say: @escaping @Sendable (String) -> Void) {
        self.options = options
        self.logger = logger
        self.signalled = signalled
        self.say = say
        self.supervisor = Supervisor(logDirectory: "\(options.statePath)/logs")
    }

    private var statePath: String { options.statePath }
    private var env: [String: String] { options.environment }
    // Children stop when `up` goes, unless it detaches and leaves them running.
    private var childEnvironment: [String: String] { options.detach ? [:] : ["ALMANAC_SUPERVISOR_PID": "\(getpid())"] }

    /// Stops whatever has started, when a signal came during start-up.
    private func abandonIfSignalled() async throws {
        guard let signal = signalled.value else { return }
        say("stopping   (signal \(signal) during start-up): stopping what was started")
        await supervisor.stopAll()
        embedded?.stop()
        throw Interrupted(signal: signal)
    }

    /// Starts everything and returns the endpoints, written to `endpoints.env`, once they answer.
    /// - Throws: `Interrupted` when a signal came during start-up; the services' errors.
    public func start() async throws -> Endpoints {
        let fm = FileManager.default
        try fm.createDirectory(atPath: "\(statePath)/logs", withIntermediateDirectories: true)
        // A file from an earlier run must not tell clients that this one is ready.
        try? fm.removeItem(atPath: "\(statePath)/endpoints.env")
        let paths = AlmanacPaths.discover()
        let functionsDir = options.functionsDirectory
        // Postgres
        let databaseURL: String
        if let url = env["DATABASE_URL"], !url.isEmpty {
            databaseURL = url
            say("postgres   using DATABASE_URL (\(PostgresConnection.redact(url)))")
        } else {
            let portFile = "\(statePath)/postgres.port"
            let port = options.postgresPort ?? (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
                ?? EmbeddedPostgres.freePort()
            try "\(port)\n".write(toFile: portFile, atomically: true, encoding: .utf8)
            let pg = try EmbeddedPostgres(dataDirectory: "\(statePath)/postgres", port: port, logFile: "\(statePath)/logs/postgres.log")
            say("postgres   starting the embedded server in \(options.state)/postgres on 127.0.0.1:\(port)")
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
        let topics = options.topics(manifests)
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

        let endpoints = Endpoints(kafkaBrokers: brokers, databaseURL: databaseURL, http: "http://127.0.0.1:\(options.httpPort)", token: token)
        await startServe(supervisor: supervisor, endpoints: endpoints, functionsDir: functionsDir, statePath: statePath,
                         environment: childEnvironment)
        try await waitForHTTP(port: options.httpPort)
        try await abandonIfSignalled()
        // Only now that Postgres, the broker and the ingress all answer do clients learn where they are.
        try writeEndpoints(endpoints, statePath: statePath)
        say("functions  \(manifests.map(\.name).joined(separator: ", "))")
        say("ready      endpoints in \(options.state)/endpoints.env:")
        // The file holds the real values (mode 0600); the screen never shows a database password.
        var shown = endpoints
        shown.databaseURL = PostgresConnection.redact(endpoints.databaseURL)
        say(shown.envFile.trimmingCharacters(in: .newlines))
        self.endpoints = endpoints
        self.usingMock = usingMock
        return endpoints
    }

    /// Supervises the services until `stopping` yields a signal, then stops them: `serve` first
    /// (its functions finish what they hold), then the rest; the state folder is kept.
    public func supervise(until stopping: AsyncStream<Int32>) async {
        guard let endpoints else { return }
        let statePath = self.statePath, functionsDir = options.functionsDirectory, childEnvironment = self.childEnvironment
        let usingMock = self.usingMock
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
                try? await self.waitForHTTP(port: self.options.httpPort)
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
        for await signal in stopping {
            say("stopping   (signal \(signal)): the router and functions finish what they hold")
            break
        }
        pgWatch.cancel()
        await supervisor.stop("serve", grace: .seconds(40))
        await supervisor.stopAll()
        embedded?.stop()
        say("stopped    state kept in \(options.state)/; `almanac up` again finds it")
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
        await supervisor.start(name: "serve", arguments: ["serve", "--http-port", "\(options.httpPort)", "--functions", functionsDir,
                                                          "--log-dir", "\(statePath)/logs", "--drop", "\(statePath)/drop",
                                                          "--export", "\(statePath)/export"],
                               environment: environment.merging(["DATABASE_URL": endpoints.databaseURL, "KAFKA_BROKERS": endpoints.kafkaBrokers]) { _, b in b })
    }

    func waitForHTTP(port: Int) async throws {
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

/// A signal that came, set from a signal handler's queue and read between steps.
public final class SignalFlag: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var signal: Int32?
    /// Makes an unset flag.
    public init() {}
    /// Records a signal (the first one is kept).
    public func set(_ s: Int32) { lock.withLock { signal = signal ?? s } }
    /// The first signal received.
    public var value: Int32? { lock.withLock { signal } }
}
