import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import Foundation
import Logging
import ServiceLifecycle

/// The entry point of a function executable: `await FunctionMain.run(MyHandler())` is its whole `main`.
///
/// The launcher starts an instance with `ALMANAC_FUNCTION_MANIFEST` (the path of its
/// `function.yaml`), `DATABASE_URL` and `KAFKA_BROKERS` (plus `ALMANAC_INSTANCE_ID`, and
/// `CUDA_VISIBLE_DEVICES` for GPU functions). The instance consumes until idle, then exits 0;
/// SIGTERM or SIGINT let the event in hand finish and then exit, and so does the death of
/// the launcher (`ALMANAC_LAUNCHER_PID`). It holds one of the function's `concurrency` slots
/// (a Postgres advisory lock) while it runs, so no more instances than that ever consume at
/// once, even across a crashed `serve`. It exits 1 with a clear message when its
/// configuration is wrong or a service fails.
public enum FunctionMain {
    /// The idle timeout that never comes (ten years).
    static let never = 10.0 * 365 * 86400

    /// Seconds an orphaned instance (its launcher died) has to finish the event in hand before it exits.
    public static let orphanGrace = 5.0

    /// Runs an instance of the function whose manifest the environment names, then exits the process.
    public static func run(_ handler: any FunctionHandler) async -> Never {
        JSONLogHandler.bootstrap()
        var logger = Logger(label: "almanac.function")
        logger.debug("process started")
        do {
            let env = ProcessInfo.processInfo.environment
            var manifest = try loadManifest(env)
            // Where something else scales instances (KEDA on Kubernetes), an instance need not
            // exit when idle: `ALMANAC_IDLE_TIMEOUT` (seconds, or `never`) overrides the manifest.
            if let idle = env["ALMANAC_IDLE_TIMEOUT"] {
                guard let seconds = idle == "never" ? FunctionMain.never : Double(idle), seconds > 0 else {
                    throw ConfigurationError(file: "environment", field: "ALMANAC_IDLE_TIMEOUT",
                                             message: "must be a number of seconds above 0 or `never`, got \(EventLimits.quoted(idle))")
                }
                manifest.idleTimeout = seconds
            }
            logger[metadataKey: "function"] = "\(manifest.name)"
            // The instance is a service from its first moment: SIGTERM or SIGINT shut the group
            // down gracefully (the event in hand finishes; during start-up, it ends once connected).
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
            // An instance dies with the serve that launched it: orphaned, it finishes the event
            // in hand and exits, and the next serve's instance takes its slot.
            if let launcher = env["ALMANAC_LAUNCHER_PID"].flatMap({ Int32($0) }) {
                let orphanLogger = logger
                services.append(OrphanWatch(parent: launcher) {
                    orphanLogger.warning("the launcher that started this instance is gone; finishing the event in hand and exiting")
                    // An orphan must not hold its slot for long (its broker may be gone too, and a
                    // send or a close would wait for it): whatever it has not finished by then is
                    // not committed, and the next instance does it again.
                    DispatchQueue.global().asyncAfter(deadline: .now() + FunctionMain.orphanGrace) {
                        orphanLogger.warning("the event in hand did not finish within \(FunctionMain.orphanGrace) s of the launcher's death; exiting")
                        exit(0)
                    }
                }.shutsDownGroup)
            }
            // Listed after the watch: a group stops its services in reverse order, so the watch
            // still runs while the instance finishes its event in hand.
            // Idle, the instance returns: the group then shuts down (the watch too) and the process exits 0.
            services.append(.init(service: FunctionInstance(manifest: manifest, handler: handler, environment: env, logger: logger),
                                  successTerminationBehavior: .gracefullyShutdownGroup, serviceName: manifest.name))
            let group = ServiceGroup(configuration: ServiceGroupConfiguration(
                services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
            exit(0)
        } catch {
            logger.critical("function instance failed", metadata: ["error": "\(error)"])
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            exit(1)
        }
    }

    static func loadManifest(_ env: [String: String]) throws -> FunctionManifest {
        guard let path = env["ALMANAC_FUNCTION_MANIFEST"], !path.isEmpty else {
            throw ConfigurationError(file: "environment", field: "ALMANAC_FUNCTION_MANIFEST",
                                     message: "is not set; function instances are started by the launcher (`almanac up`), which sets it to the function's function.yaml")
        }
        return try FunctionManifest(file: path)
    }

    /// Connects to Postgres and Kafka as the environment says and builds the runtime.
    public static func makeRuntime(manifest: FunctionManifest, handler: any FunctionHandler, env: [String: String],
                                   logger: Logger) async throws -> FunctionRuntime {
        guard let dbURL = env["DATABASE_URL"], !dbURL.isEmpty else {
            throw ConfigurationError(file: "environment", field: "DATABASE_URL", message: "is not set; see .almanac/endpoints.env after `almanac up`")
        }
        guard let kafka = KafkaConfiguration.fromEnvironment(env) else {
            throw ConfigurationError(file: "environment", field: "KAFKA_BROKERS", message: "is not set; see .almanac/endpoints.env after `almanac up`")
        }
        let paths = AlmanacPaths.discover(env: env)
        let schemas = try EventSchemaRegistry(directory: URL(fileURLWithPath: env["ALMANAC_EVENTS_DIR"] ?? paths.events))
        // Postgres and Kafka are set up side by side: a cold start waits for the slower only.
        async let connecting = PostgresConnection.connect(url: dbURL, applicationName: "almanac-fn-\(manifest.name)", logger: logger)
        let producer = try KafkaProducer(configuration: kafka)
        await producer.warm(topics: [Outbox.busTopic, DeadLetter.topic])
        let cluster = try await producer.clusterID()
        let db = try await connecting
        logger.debug("connected", metadata: ["cluster": "\(cluster)"])
        // Concurrency holds across crashes: a slot is a Postgres advisory lock on this connection.
        guard let slot = try await InstanceSlots.take(function: manifest.name, concurrency: manifest.concurrency, in: db,
                                                      patience: .seconds(max(30, manifest.idleTimeout)), logger: logger) else {
            throw FunctionError("all \(manifest.concurrency) instance slot(s) of \(manifest.name) stayed taken; another instance is running")
        }
        logger.debug("instance slot taken", metadata: ["slot": "\(slot)"])
        // A single instance takes every partition at once, from the positions kept in Postgres
        // with its effects: no group join and no offset fetch hold up a cold start. A partition
        // with no position in this cluster has nothing finished in it and starts at the
        // beginning; one whose position is past the end (a recreated topic) is reset to the
        // beginning by the consumer (auto.offset.reset). Several instances share the
        // partitions as a group.
        let consumer: KafkaConsumer
        if manifest.concurrency == 1 {
            let positions = try await ConsumerPositions.load(cluster: cluster, topics: [manifest.inputTopic], in: db)[manifest.name] ?? [:]
            consumer = try KafkaConsumer(configuration: kafka, groupID: manifest.consumerGroup, topics: [manifest.inputTopic],
                                         assignment: .allFrom(positions: [manifest.inputTopic: positions]))
            logger.debug("partitions assigned", metadata: ["positions": "\(positions)"])
            // Bring the group's committed offsets (what the launcher reads lag from) up to them.
            try? await consumer.commit(positions.map { KafkaCommitPosition(topic: manifest.inputTopic, partition: $0.key, offset: $0.value) },
                                       waiting: false)
        } else {
            consumer = try KafkaConsumer(configuration: kafka, groupID: manifest.consumerGroup, topics: [manifest.inputTopic],
                                         assignment: .group)
        }
        return FunctionRuntime(manifest: manifest, handler: handler, database: db, producer: producer, source: consumer,
                               schemas: schemas, clusterID: cluster, instanceID: env["ALMANAC_INSTANCE_ID"], logger: logger)
    }
}

/// One function instance as a service: connects (`FunctionMain.makeRuntime`), consumes until
/// idle or shut down, then leaves the consumer group.
struct FunctionInstance: Service {
    let manifest: FunctionManifest
    let handler: any FunctionHandler
    let environment: [String: String]
    let logger: Logger

    func run() async throws {
        // Asked to stop while it connects, an instance has nothing in hand: it exits at once (a
        // connection to a broker that is gone could hold it up for minutes).
        let connecting = StartupGate()
        let runtime = try await withGracefulShutdownHandler {
            let runtime = try await FunctionMain.makeRuntime(manifest: manifest, handler: handler, env: environment, logger: logger)
            connecting.finish()
            return runtime
        } onGracefulShutdown: { [logger] in
            guard connecting.isOpen else { return }
            logger.info("shutdown requested while starting; exiting")
            exit(0)
        }
        try await runtime.run()
        await (runtime.source as? KafkaConsumer)?.close()
    }
}

/// Whether an instance is still starting (set from the shutdown handler's thread and the instance's).
final class StartupGate: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var starting = true
    /// Marks the start-up done.
    func finish() { lock.withLock { starting = false } }
    /// Whether the start-up is still going on.
    var isOpen: Bool { lock.withLock { starting } }
}
