import AlmanacFunctions
import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import Foundation
import Logging
import ServiceLifecycle

/// Consumes the bus and delivers each event to every function that subscribes to it.
///
/// Per batch of records: decode each (binary or structured mode) and validate its data
/// against its type's schema, dead-lettering what fails; match it against every manifest's
/// subscriptions; produce it (binary mode, keyed by subject) to each match's
/// `almanac.fn.<name>`; archive it in Postgres; and commit the batch's offsets only after
/// every produce was acknowledged. An event no function subscribes to is counted and logged.
public final class EventRouter: Service {
    let manifests: [FunctionManifest]
    let schemas: EventSchemaRegistry
    let database: PostgresConnection
    let producer: KafkaProducer
    let source: KafkaConsumer
    let logger: Logger
    let metrics: MetricsRegistry
    let onRouted: @Sendable (Set<String>) -> Void
    /// The consumer group of the router.
    public static let consumerGroup = "almanac.router"

    /// Makes a router.
    /// - Parameter onRouted: called with the names of the functions that just received events (the launcher's hint).
    public init(manifests: [FunctionManifest], schemas: EventSchemaRegistry, database: PostgresConnection, producer: KafkaProducer,
                source: KafkaConsumer, logger: Logger, metrics: MetricsRegistry = .shared,
                onRouted: @escaping @Sendable (Set<String>) -> Void = { _ in }) {
        self.manifests = manifests
        self.schemas = schemas
        self.database = database
        self.producer = producer
        self.source = source
        var l = logger
        l[metadataKey: "component"] = "router"
        self.logger = l
        self.metrics = metrics
        self.onRouted = onRouted
    }

    /// Routes until the service group shuts down gracefully (after the batch in hand) or the task is cancelled.
    /// - Throws: when Kafka or Postgres fail so that a batch cannot be completed; its offsets are not committed.
    public func run() async throws {
        logger.info("router started", metadata: ["functions": "\(manifests.map(\.name).joined(separator: ","))"])
        // Two stages overlap: batch N is archived and committed while batch N+1 is delivered.
        // Offsets are still committed in order, each only after its batch was delivered and archived.
        var settling: Task<Void, Error>?
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let records = try await source.poll(max: 2000, timeout: .milliseconds(100))
            if records.isEmpty {
                if let s = settling { try await s.value; settling = nil }
                continue
            }
            let batch = try await deliver(records)
            if let s = settling { try await s.value }
            settling = Task { try await self.settleSurvivingPostgres(batch) }
        }
        if let s = settling { try await s.value }
        logger.info("router stopped")
    }


    /// One event's fate in a batch.
    struct Routed: Sendable {
        var record: KafkaRecord
        var event: CloudEvent
        var targets: [String]
    }

    /// A delivered batch waiting to be archived and committed.
    struct Batch: Sendable {
        var records: [KafkaRecord]
        var routed: [Routed]
        var letters: [DeadLetter]
    }

    /// Decodes, validates and matches a batch, and produces it to the function topics;
    /// returns once Kafka acknowledged every delivery, and tells the launcher.
    func deliver(_ records: [KafkaRecord]) async throws -> Batch {
        var routed: [Routed] = []
        var letters: [DeadLetter] = []
        for record in records {
            do {
                let event = try CloudEvent(kafka: record.eventRecord)
                try schemas.validate(event)
                let document = EventPattern.document(for: event)
                let targets = manifests.filter { $0.subscribes(toDocument: document) }.map(\.name)
                if targets.isEmpty {
                    metrics.increment("almanac_events_unmatched_total", labels: ["type": event.type],
                                      help: "Events no function subscribes to")
                    logger.info("no function subscribes to this event", metadata: [
                        "event_id": "\(event.id)", "event_type": "\(event.type)", "tenant": "\(event.tenant)"])
                }
                routed.append(Routed(record: record, event: event, targets: targets))
            } catch let error as EventError {
                let decoded = try? CloudEvent(kafka: record.eventRecord)
                letters.append(DeadLetter(stage: "router", record: record, event: decoded, errorCode: error.code.description,
                                          error: error.message, attempts: 0))
            }
        }
        try await produceAll(routed)
        onRouted(Set(routed.flatMap(\.targets)))
        return Batch(records: records, routed: routed, letters: letters)
    }

    /// Settles a batch, and when Postgres is away (a restart), tries again with backoff until
    /// it is back: settling is idempotent (archive and dead letters ignore repeats), and the
    /// offsets are committed only once it succeeded, so nothing is lost or done twice.
    func settleSurvivingPostgres(_ batch: Batch) async throws {
        var delay = 0.2
        while true {
            do { return try await settle(batch) } catch let error as PostgresError
                where (error.code == .connectionLost || error.code == .connectionFailed) && !Task.isShuttingDownGracefully {
                logger.warning("Postgres is unavailable; settling the batch again", metadata: ["error": "\(error.message)", "retry_in_s": "\(delay)"])
                try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
                delay = min(5, delay * 2)
            }
        }
    }

    /// Archives a delivered batch, stores its dead letters, and commits its offsets.
    func settle(_ batch: Batch) async throws {
        let (records, routed) = (batch.records, batch.routed)
        let letters = batch.letters + (try await archiveEach(routed))
        for letter in letters {
            try await DeadLetterStore.insert(letter, into: database)
            metrics.increment("almanac_dead_letters_total", labels: ["stage": "router", "code": letter.errorCode], help: "Events dead-lettered")
            logger.error("record dead-lettered", metadata: [
                "error_code": "\(letter.errorCode)", "error": "\(letter.error)", "topic": "\(letter.sourceTopic)",
                "partition": "\(letter.sourcePartition ?? -1)", "offset": "\(letter.sourceOffset ?? -1)"])
            do { try await DeadLetterStore.publish(letter, producer: producer) } catch {
                logger.warning("dead letter stored but not produced", metadata: ["error": "\(error)"])
            }
        }
        var positions: [String: KafkaCommitPosition] = [:]
        for r in records {
            let key = "\(r.topic)/\(r.partition)"
            if (positions[key]?.offset ?? -1) < r.offset + 1 { positions[key] = KafkaCommitPosition(after: r) }
        }
        try await source.commit(Array(positions.values))
        let delivered = routed.reduce(0) { $0 + $1.targets.count }
        metrics.increment("almanac_events_received_total", by: Double(records.count), help: "Records consumed from the bus")
        metrics.increment("almanac_events_routed_total", by: Double(delivered), help: "Deliveries to function topics")
    }

    /// Produces every delivery and waits for all acknowledgements, retrying failures a few times.
    func produceAll(_ routed: [Routed]) async throws {
        var pending: [(topic: String, record: KafkaEventRecord)] = []
        for r in routed where !r.targets.isEmpty {
            let record = r.event.kafkaBinary()
            for t in r.targets { pending.append((FunctionManifest.inputTopic(for: t), record)) }
        }
        var attempt = 0
        while !pending.isEmpty {
            let failed = await produceBatch(pending)
            if failed.isEmpty { return }
            attempt += 1
            if attempt >= 5 {
                throw KafkaError(.produce, "\(failed.count) deliveries still failing after \(attempt) attempts: \(failed.first!.error)")
            }
            logger.warning("retrying failed deliveries", metadata: ["count": "\(failed.count)", "error": "\(failed.first!.error)"])
            try await Task.sleep(for: .milliseconds(100 * attempt))
            pending = failed.map { ($0.topic, $0.record) }
        }
    }

    private func produceBatch(_ items: [(topic: String, record: KafkaEventRecord)]) async -> [(topic: String, record: KafkaEventRecord, error: KafkaError)] {
        await withCheckedContinuation { cont in
            let tracker = BatchTracker(count: items.count) { failures in
                cont.resume(returning: failures.map { (items[$0.index].topic, items[$0.index].record, $0.error) })
            }
            for (i, item) in items.enumerated() {
                producer.produce(topic: item.topic, key: item.record.key, value: item.record.value, headers: item.record.headers) { result in
                    if case .failure(let e) = result { tracker.done(index: i, error: e) } else { tracker.done(index: i, error: nil) }
                }
            }
        }
    }

    /// Archives a batch in one statement; when Postgres refuses it for what an event holds
    /// (not for a lost connection), archives event by event and returns a dead letter
    /// (code `unstorable`, with the database's error) for each one it refuses, so one event
    /// fails only itself.
    func archiveEach(_ routed: [Routed]) async throws -> [DeadLetter] {
        do {
            try await archive(routed.map(\.event))
            return []
        } catch let error as PostgresError where error.sqlState != nil {
            logger.warning("archiving a batch failed; archiving event by event", metadata: ["error": "\(error.message)"])
        }
        var letters: [DeadLetter] = []
        for r in routed {
            do { try await archive([r.event]) } catch let error as PostgresError where error.sqlState != nil {
                letters.append(DeadLetter(stage: "router", record: r.record, event: r.event, errorCode: "unstorable",
                                          error: "the event archive refused this event (delivered to \(r.targets.count) function(s)): \(error.message)",
                                          attempts: 1))
            }
        }
        return letters
    }

    /// Archives events for replay; an event archived before (same source and id) is left as it was.
    func archive(_ events: [CloudEvent]) async throws {
        try await EventArchive.store(events, in: database)
    }
}

/// Counts completions of a batch of produces and reports the failures once all are in.
final class BatchTracker: @unchecked Sendable {
    // Guarded by `lock`; completions arrive on librdkafka's delivery thread.
    private let lock = NSLock()
    private var remaining: Int
    private var failures: [(index: Int, error: KafkaError)] = []
    private let finished: ([(index: Int, error: KafkaError)]) -> Void

    init(count: Int, finished: @escaping ([(index: Int, error: KafkaError)]) -> Void) {
        self.remaining = count
        self.finished = finished
        if count == 0 { finished([]) }
    }

    func done(index: Int, error: KafkaError?) {
        lock.lock()
        if let error { failures.append((index, error)) }
        remaining -= 1
        let last = remaining == 0
        let f = failures
        lock.unlock()
        if last { finished(f) }
    }
}
