import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import Foundation
import Logging

/// Where a function's records come from: a Kafka group consumer in production; the run
/// loop is generic over it so tests can drive it.
public protocol EventSource: Sendable {
    /// The next record within `timeout`, or nil.
    func poll(timeout: Duration) async throws -> KafkaRecord?
    /// Commits positions.
    func commit(_ positions: [KafkaCommitPosition]) async throws
    /// Stops fetching while a handler runs; polling goes on to keep the group membership.
    func pause() async throws
    /// Fetches again.
    func resume() async throws
    /// Leaves the group.
    func close() async
    /// Whether any partition is assigned yet (a group member waits for the join).
    func hasAssignment() async -> Bool
}

extension KafkaConsumer: EventSource {
    /// Whether any partition is assigned yet.
    public func hasAssignment() async -> Bool {
        ((try? await assignment()) ?? []).isEmpty == false
    }
}

/// Runs one instance of a function: consumes `almanac.fn.<name>`, one event at a time,
/// and owns everything around the handler.
///
/// For each record: decode the CloudEvent (dead-letter it when it is not one) → validate its
/// data against its schema (dead-letter on failure) → skip it when its id is already
/// processed → run the handler under the manifest's deadline → in one transaction, mark the
/// id processed, apply the staged writes, put the emitted events in the outbox and record
/// the invocation → relay the outbox to the bus → commit the Kafka offset. A failing
/// attempt is recorded and retried with exponential backoff and jitter; after the last
/// one the event is dead-lettered (table and topic). While the handler runs, polling
/// continues (records that arrive are buffered in order, and fetching is paused when the
/// buffer fills), so an hour-long handler keeps its group membership.
/// The instance exits after `idleTimeout` without events (scale to zero).
public final class FunctionRuntime: Sendable {
    let manifest: FunctionManifest
    let handler: any FunctionHandler
    let database: PostgresConnection
    let producer: KafkaProducer
    let source: any EventSource
    let schemas: EventSchemaRegistry
    let instanceID: String
    let logger: Logger
    let metrics: MetricsRegistry
    let stopFlag = StopFlag()

    /// Makes a runtime for one instance.
    public init(manifest: FunctionManifest, handler: any FunctionHandler, database: PostgresConnection,
                producer: KafkaProducer, source: any EventSource, schemas: EventSchemaRegistry,
                instanceID: String? = nil, logger: Logger, metrics: MetricsRegistry = .shared) {
        self.manifest = manifest
        self.handler = handler
        self.database = database
        self.producer = producer
        self.source = source
        self.schemas = schemas
        self.instanceID = instanceID ?? "\(manifest.name)-\(getpid())"
        var logger = logger
        logger[metadataKey: "function"] = "\(manifest.name)"
        logger[metadataKey: "instance"] = "\(self.instanceID)"
        self.logger = logger
        self.metrics = metrics
    }

    /// Asks the loop to stop after the event in hand (graceful shutdown).
    public func stop() { stopFlag.set() }

    /// Why `run` returned.
    public enum ExitReason: Sendable, Equatable {
        /// No event arrived for `idleTimeout`.
        case idle
        /// `stop()` was called.
        case stopped
    }

    /// Consumes until idle or stopped.
    /// - Throws: when the database or Kafka fails in a way that leaves an event's fate unknown;
    ///   its offset is then not committed and another instance will see it again.
    public func run() async throws -> ExitReason {
        logger.info("function instance started", metadata: ["topic": "\(manifest.inputTopic)"])
        try await Outbox.relay(function: manifest.name, db: database, producer: producer, logger: logger)
        var stash: [KafkaRecord] = []
        var lastActivity = ContinuousClock.now
        // The idle clock starts once partitions are assigned: a group join can take seconds.
        var assigned = false
        var paused = false
        let joinDeadline = ContinuousClock.now + .seconds(120)
        defer { logger.info("function instance stopping") }
        while true {
            if stopFlag.isSet { return .stopped }
            let next: KafkaRecord?
            if !stash.isEmpty { next = stash.removeFirst() } else { next = try await source.poll(timeout: .milliseconds(100)) }
            guard let record = next else {
                if !assigned {
                    assigned = await source.hasAssignment()
                    if assigned { lastActivity = ContinuousClock.now }
                    if !assigned && ContinuousClock.now < joinDeadline { continue }
                }
                if ContinuousClock.now - lastActivity > .seconds(manifest.idleTimeout) {
                    logger.info("idle, exiting", metadata: ["idle_seconds": "\(manifest.idleTimeout)"])
                    return .idle
                }
                continue
            }
            assigned = true
            let (arrived, pausedNow) = try await processKeepingMembership(record, room: FunctionRuntime.maxBuffered - stash.count)
            stash += arrived
            paused = paused || pausedNow
            if paused && stash.count < FunctionRuntime.maxBuffered / 2 {
                try await source.resume()
                paused = false
            }
            do {
                try await source.commit([KafkaCommitPosition(after: record)])
            } catch {
                // The effects are committed in Postgres; a redelivery will be skipped by id.
                logger.warning("offset commit failed; the event may be redelivered and skipped", metadata: ["error": "\(error)"])
            }
            lastActivity = ContinuousClock.now
        }
    }

    /// Records polled while handlers run, held in order; past this many the partitions are
    /// paused (backpressure) until half of them are handled. Pausing costs up to a second of
    /// fetch latency on resume, so it is kept for backlogs.
    static let maxBuffered = 256

    /// Processes a record while polling in parallel, so the consumer keeps its group
    /// membership however long the handler runs.
    /// - Parameter room: how many records may be buffered before fetching is paused.
    /// - Returns: records that arrived meanwhile, and whether fetching was paused.
    func processKeepingMembership(_ record: KafkaRecord, room: Int) async throws -> (arrived: [KafkaRecord], paused: Bool) {
        let source = self.source
        return try await withThrowingTaskGroup(of: ([KafkaRecord], Bool).self) { group in
            group.addTask { try await self.process(record); return ([], false) }
            group.addTask {
                var arrived: [KafkaRecord] = []
                var paused = false
                while !Task.isCancelled {
                    // Short polls: a blocking poll cannot be cancelled, and the next event waits for it.
                    guard let r = try? await source.poll(timeout: .milliseconds(10)) else { continue }
                    arrived.append(r)
                    if !paused && arrived.count >= room {
                        try await source.pause()
                        paused = true
                    }
                }
                return (arrived, paused)
            }
            // The keep-alive loop ends only when cancelled, so the first result is the processing's.
            _ = try await group.next()
            group.cancelAll()
            var arrived: [KafkaRecord] = []
            var paused = false
            while let (more, p) = try await group.next() {
                arrived += more
                paused = paused || p
            }
            return (arrived, paused)
        }
    }

    /// Everything that happens to one record.
    func process(_ record: KafkaRecord) async throws {
        let event: CloudEvent
        do {
            event = try CloudEvent(kafka: record.eventRecord)
            try schemas.validate(event)
        } catch let error as EventError {
            let decoded = try? CloudEvent(kafka: record.eventRecord)
            try await deadLetter(record: record, event: decoded, code: error.code.description, error: error.message,
                                 attempts: 0, log: logger)
            return
        }
        var log = logger
        log[metadataKey: "event_id"] = "\(event.id)"
        log[metadataKey: "event_type"] = "\(event.type)"
        log[metadataKey: "tenant"] = "\(event.tenant)"
        if let trace = event.traceID { log[metadataKey: "trace_id"] = "\(trace)" }

        let seen = try await database.query("SELECT outcome FROM processed_events WHERE function = $1 AND event_id = $2",
                                            [manifest.name, event.id])
        if let prior = seen.first {
            log.info("event already processed, skipping", metadata: ["outcome": "\(prior.text("outcome") ?? "")"])
            try await InvocationLog.record(function: manifest.name, event: event, instance: instanceID, attempt: 0,
                                           outcome: .duplicate, error: nil, startedAt: Date(), duration: 0, in: database)
            try await Outbox.relay(function: manifest.name, db: database, producer: producer, logger: log)
            return
        }

        var attempt = 1
        while true {
            let started = Date()
            let clockStart = ContinuousClock.now
            let context = FunctionContext(manifest: manifest, event: event, attempt: attempt,
                                          deadline: clockStart + .seconds(manifest.timeout), logger: log, database: database)
            log.debug("invoking handler", metadata: ["attempt": "\(attempt)"])
            var outcome = await runWithDeadline(context)
            let elapsed = ContinuousClock.now - clockStart
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            if case .succeeded = outcome {
                do {
                    let applied = try await commit(event: event, context: context, attempt: attempt, started: started, seconds: seconds)
                    metrics.increment("almanac_invocations_total", labels: ["function": manifest.name, "outcome": applied ? "succeeded" : "duplicate"],
                                      help: "Handler invocations by function and outcome")
                    metrics.observe("almanac_invocation_duration_seconds", seconds, labels: ["function": manifest.name],
                                    help: "Handler durations")
                    log.info("event handled", metadata: ["attempt": "\(attempt)", "duration_ms": "\(Int(seconds * 1000))"])
                    try await Outbox.relay(function: manifest.name, db: database, producer: producer, logger: log)
                    return
                } catch let error as PostgresError where error.code == .connectionLost || error.code == .connectionFailed {
                    throw error
                } catch {
                    outcome = .failed(error, retriable: true)
                }
            }
            let (kind, message, retriable): (InvocationLog.Outcome, String, Bool) = {
                switch outcome {
                case .failed(let e, let r): return (.failed, "\(e)", r)
                case .timedOut: return (.timedOut, "handler exceeded its deadline of \(manifest.timeout)s (timeout in function.yaml)", true)
                case .succeeded: return (.succeeded, "", true)
                }
            }()
            metrics.increment("almanac_invocations_total", labels: ["function": manifest.name, "outcome": kind.rawValue])
            log.warning("handler attempt failed", metadata: ["attempt": "\(attempt)", "error": "\(message)", "outcome": "\(kind.rawValue)"])
            try await InvocationLog.record(function: manifest.name, event: event, instance: instanceID, attempt: attempt,
                                           outcome: kind, error: message, startedAt: started, duration: seconds, in: database)
            if !retriable || attempt >= manifest.retries.maxAttempts {
                let code = kind == .timedOut ? "deadline_exceeded" : "handler_failed"
                let why = "\(manifest.name) gave up after \(attempt) attempt\(attempt == 1 ? "" : "s"): \(message)"
                try await deadLetter(record: record, event: event, code: code, error: why, attempts: attempt, log: log)
                return
            }
            let delay = manifest.retries.backoff(afterAttempt: attempt)
            try? await Task.sleep(for: .milliseconds(Int(delay * 1000)))
            attempt += 1
        }
    }

    enum AttemptOutcome {
        case succeeded
        case failed(Error, retriable: Bool)
        case timedOut
    }

    /// Runs the handler; past the deadline the handler is cancelled and abandoned, and whatever it stages later is ignored.
    func runWithDeadline(_ context: FunctionContext) async -> AttemptOutcome {
        let handler = self.handler
        let event = context.event
        let gate = OnceGate<AttemptOutcome>()
        let work = Task {
            do {
                try await handler.handle(event, context: context)
                gate.offer(.succeeded)
            } catch let e as FunctionError {
                gate.offer(.failed(e, retriable: e.isRetriable))
            } catch {
                gate.offer(.failed(error, retriable: true))
            }
        }
        let timer = Task {
            try? await Task.sleep(for: .milliseconds(Int(manifest.timeout * 1000)))
            if !Task.isCancelled { gate.offer(.timedOut) }
        }
        let result = await gate.value
        timer.cancel()
        if case .timedOut = result { work.cancel() }
        return result
    }

    /// Applies an attempt's staged effects in one transaction with the processed mark and the outbox.
    /// - Returns: false when another instance had already processed the event.
    func commit(event: CloudEvent, context: FunctionContext, attempt: Int, started: Date, seconds: Double) async throws -> Bool {
        let (effects, events) = context.seal()
        let name = manifest.name
        let instance = instanceID
        let applied = try await database.transaction { tx -> Bool in
            let marked = try await tx.exec("""
                INSERT INTO processed_events (function, event_id, tenant, outcome) VALUES ($1, $2, $3, 'succeeded')
                ON CONFLICT DO NOTHING
                """, [name, event.id, event.tenant])
            if marked == 0 { return false }
            for effect in effects { try await effect(tx) }
            try await Outbox.enqueue(events, function: name, in: tx)
            try await InvocationLog.record(function: name, event: event, instance: instance, attempt: attempt,
                                           outcome: .succeeded, error: nil, startedAt: started, duration: seconds, in: tx)
            return true
        }
        if !applied {
            try await InvocationLog.record(function: name, event: event, instance: instance, attempt: attempt, outcome: .duplicate,
                                           error: "another instance processed it first", startedAt: started, duration: seconds, in: database)
        }
        return applied
    }

    func deadLetter(record: KafkaRecord, event: CloudEvent?, code: String, error: String, attempts: Int, log: Logger) async throws {
        let letter = DeadLetter(stage: manifest.name, record: record, event: event, errorCode: code, error: error, attempts: attempts)
        let name = manifest.name
        let instance = instanceID
        try await database.transaction { tx in
            try await DeadLetterStore.insert(letter, into: tx)
            if let event {
                try await tx.exec("""
                    INSERT INTO processed_events (function, event_id, tenant, outcome) VALUES ($1, $2, $3, 'dead_lettered')
                    ON CONFLICT DO NOTHING
                    """, [name, event.id, event.tenant])
                try await InvocationLog.record(function: name, event: event, instance: instance, attempt: attempts, outcome: .deadLettered,
                                               error: error, startedAt: Date(), duration: 0, in: tx)
            }
        }
        metrics.increment("almanac_dead_letters_total", labels: ["stage": manifest.name, "code": code], help: "Events dead-lettered")
        log.error("event dead-lettered", metadata: ["error_code": "\(code)", "error": "\(error)",
                                                     "topic": "\(record.topic)", "partition": "\(record.partition)", "offset": "\(record.offset)"])
        do { try await DeadLetterStore.publish(letter, producer: producer) } catch {
            log.warning("dead letter stored but not produced to \(DeadLetter.topic)", metadata: ["error": "\(error)"])
        }
    }
}

/// A value offered once; later offers are ignored and `value` waits for the first.
final class OnceGate<T: Sendable>: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var result: T?
    private var waiter: CheckedContinuation<T, Never>?

    func offer(_ value: T) {
        lock.lock()
        guard result == nil else { lock.unlock(); return }
        result = value
        let w = waiter
        waiter = nil
        lock.unlock()
        w?.resume(returning: value)
    }

    var value: T {
        get async {
            await withCheckedContinuation { cont in
                lock.lock()
                if let result { lock.unlock(); cont.resume(returning: result); return }
                waiter = cont
                lock.unlock()
            }
        }
    }
}

/// A flag set once from any thread (a signal handler's queue, a test).
final class StopFlag: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}
