import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import Foundation
import Logging
import ServiceLifecycle

/// Where a function's records come from: a Kafka group consumer in production; the run
/// loop is generic over it so tests can drive it.
public protocol EventSource: Sendable {
    /// The first record within `timeout`, and whatever else is ready, up to `max`.
    func poll(max: Int, timeout: Duration) async throws -> [KafkaRecord]
    /// Commits positions; `waiting: false` may only queue the commit.
    func commit(_ positions: [KafkaCommitPosition], waiting: Bool) async throws
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
/// processed → count the attempt in Postgres (`AttemptLedger`: an event whose earlier
/// attempts died with their processes is dead-lettered `crashed` once they are spent) → run the handler under the manifest's deadline → in one transaction, mark the
/// id processed, apply the staged writes, put the emitted events in the outbox and record
/// the invocation → relay the outbox to the bus → commit the Kafka offset. A failing
/// attempt is recorded and retried with exponential backoff and jitter; after the last
/// one the event is dead-lettered (table and topic). A poller task polls for the whole life
/// of the instance (records are buffered in order, and fetching is paused when the buffer
/// fills), so an hour-long handler keeps its group membership.
/// The instance exits after `idleTimeout` without events (scale to zero). It is a `Service`:
/// a graceful shutdown of its group (SIGTERM or SIGINT in `FunctionMain`) lets the event in
/// hand finish, then `run` returns.
public final class FunctionRuntime: Service {
    let manifest: FunctionManifest
    let handler: any FunctionHandler
    let database: PostgresConnection
    let producer: KafkaProducer
    let source: any EventSource
    let schemas: EventSchemaRegistry
    let instanceID: String
    let clusterID: String
    let logger: Logger
    let metrics: MetricsRegistry
    /// What happens when a cancelled handler will not stop: the process exits (status 70).
    let onStuckHandler: @Sendable () -> Void

    /// Makes a runtime for one instance.
    public init(manifest: FunctionManifest, handler: any FunctionHandler, database: PostgresConnection,
                producer: KafkaProducer, source: any EventSource, schemas: EventSchemaRegistry, clusterID: String,
                instanceID: String? = nil, logger: Logger, metrics: MetricsRegistry = .shared,
                onStuckHandler: @escaping @Sendable () -> Void = { exit(70) }) {
        self.onStuckHandler = onStuckHandler
        self.clusterID = clusterID
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

    /// Why `consume` returned.
    public enum ExitReason: Sendable, Equatable {
        /// No event arrived for `idleTimeout`.
        case idle
        /// The group shut down gracefully (or the task was cancelled) between events.
        case stopped
    }

    /// Consumes until idle or shut down (the `Service` entry point).
    /// - Throws: when the database or Kafka fails in a way that leaves an event's fate unknown;
    ///   its offset is then not committed and another instance will see it again.
    public func run() async throws {
        let reason = try await consume()
        logger.info("function instance exited", metadata: ["reason": "\(reason)"])
    }

    /// Consumes until idle, or until a graceful shutdown or cancellation between events.
    public func consume() async throws -> ExitReason {
        logger.info("function instance started", metadata: ["topic": "\(manifest.inputTopic)"])
        try await Outbox.relay(function: manifest.name, db: database, producer: producer, logger: logger)
        let buffer = RecordBuffer()
        // One poller for the instance's whole life: it keeps the consumer's group membership
        // however long a handler runs, and the handler loop never waits on a poll.
        let poller = Task { [source] in
            var paused = false
            while !Task.isCancelled {
                do {
                    let records = try await source.poll(max: 64, timeout: .milliseconds(100))
                    let depth = await buffer.push(records)
                    if !paused && depth >= FunctionRuntime.maxBuffered {
                        try await source.pause()
                        paused = true
                    } else if paused && depth < FunctionRuntime.maxBuffered / 2 {
                        try await source.resume()
                        paused = false
                    }
                } catch {
                    await buffer.fail(error)
                    return
                }
            }
        }
        defer { poller.cancel() }
        var lastActivity = ContinuousClock.now
        // The idle clock starts once partitions are assigned: a group join can take seconds.
        var assigned = false
        let joinDeadline = ContinuousClock.now + .seconds(120)
        defer { logger.info("function instance stopping") }
        while true {
            if Task.isShuttingDownGracefully || Task.isCancelled { return .stopped }
            guard let record = try await buffer.next(timeout: .milliseconds(100)) else {
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
            try await process(record)
            do {
                // The event's effects are committed in Postgres already; a lost offset commit
                // only means a redelivery that is skipped by id, so the commit need not be awaited.
                try await source.commit([KafkaCommitPosition(after: record)], waiting: false)
            } catch {
                logger.warning("offset commit failed; the event may be redelivered and skipped", metadata: ["error": "\(error)"])
            }
            lastActivity = ContinuousClock.now
        }
    }

    /// Records polled ahead of the handler, held in order; past this many the partitions
    /// are paused (backpressure) until half of them are handled. Pausing costs up to a
    /// second of fetch latency on resume in librdkafka 2.0.2, so it is kept for backlogs.
    static let maxBuffered = 256

    /// Everything that happens to one record: the `AttemptStateMachine` decides, this carries out.
    func process(_ record: KafkaRecord) async throws {
        var machine = AttemptStateMachine(policy: policy)
        let event: CloudEvent
        do {
            event = try CloudEvent(kafka: record.eventRecord)
            try schemas.validate(event)
        } catch let error as EventError {
            let decoded = try? CloudEvent(kafka: record.eventRecord)
            try await perform(machine.rejected(code: error.code.description, message: error.message), &machine,
                              record: record, event: decoded, log: logger)
            return
        }
        var log = logger
        log[metadataKey: "event_id"] = "\(event.id)"
        log[metadataKey: "event_type"] = "\(event.type)"
        log[metadataKey: "tenant"] = "\(event.tenant)"
        if let trace = event.traceID { log[metadataKey: "trace_id"] = "\(trace)" }

        let opening = try await AttemptLedger.open(function: manifest.name, event: event, instance: instanceID, in: database)
        if opening.previousDied {
            log.warning("an earlier attempt died with its process", metadata: ["attempt": "\(opening.attempt - 1)"])
        }
        try await perform(machine.opened(processed: opening.processed, attempt: opening.attempt, previousDied: opening.previousDied),
                          &machine, record: record, event: event, log: log)
    }

    /// The runtime's attempt policy: the manifest's retries and deadline.
    var policy: AttemptStateMachine.Policy { AttemptStateMachine.Policy(manifest: manifest) }

    /// Carries out the machine's actions, feeding it each outcome, until the event's fate is settled.
    private func perform(_ first: [AttemptStateMachine.Action], _ machine: inout AttemptStateMachine,
                         record: KafkaRecord, event: CloudEvent?, log: Logger) async throws {
        var pending = first[...]
        // The attempt in hand: its context (for the commit), when it started, and a handler
        // task cancelled at its deadline that has yet to stop.
        var context: FunctionContext?
        var started = Date()
        var seconds = 0.0
        var abandoned: Task<Void, Never>?
        while let action = pending.popFirst() {
            switch action {
            case .skip(let prior):
                guard let event else { return }
                log.info("event already processed, skipping", metadata: ["outcome": "\(prior)"])
                try await InvocationLog.record(function: manifest.name, event: event, instance: instanceID, attempt: 0,
                                               outcome: .duplicate, error: nil, startedAt: Date(), duration: 0, in: database)
                try await ConsumerPositions.advance(function: manifest.name, cluster: clusterID, past: record, in: database)
                try await Outbox.relay(function: manifest.name, db: database, producer: producer, logger: log)
            case .invoke(let attempt, let timeout):
                guard let event else { return }
                started = Date()
                let clockStart = ContinuousClock.now
                let flusher = ProgressFlusher(function: manifest.name, event: event, attempt: attempt, database: database) { value in
                    log.info("progress", metadata: ["attempt": "\(attempt)", "progress": "\(value.serialized())"])
                }
                let attemptContext = FunctionContext(manifest: manifest, event: event, attempt: attempt,
                                                     deadline: clockStart + timeout, logger: log, database: database,
                                                     progress: { flusher.update($0) })
                context = attemptContext
                log.debug("invoking handler", metadata: ["attempt": "\(attempt)"])
                let (outcome, cancelled) = await runWithDeadline(attemptContext, timeout: timeout)
                // No progress is written after the attempt: its outcome clears the row.
                await flusher.finish()
                abandoned = cancelled
                let elapsed = ContinuousClock.now - clockStart
                seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                pending += machine.handlerEnded(outcome)
            case .commit(let attempt):
                guard let event, let context else { return }
                do {
                    let applied = try await commit(event: event, record: record, context: context, attempt: attempt, started: started, seconds: seconds)
                    metrics.observe("almanac_invocation_duration_seconds", seconds, labels: ["function": manifest.name],
                                    help: "Handler durations")
                    log.info("event handled", metadata: ["attempt": "\(attempt)", "duration_ms": "\(Int(seconds * 1000))"])
                    if context.emittedCount > 0 {
                        try await Outbox.relay(function: manifest.name, db: database, producer: producer, logger: log)
                    }
                    pending += machine.committed(applied: applied)
                } catch let error as PostgresError where error.code == .connectionLost || error.code == .connectionFailed {
                    throw error
                } catch {
                    pending += machine.commitFailed("\(error)")
                }
            case .recordFailure(let attempt, let kind, let message, let endAttempt):
                guard let event else { return }
                let outcome: InvocationLog.Outcome = kind == .timedOut ? .timedOut : .failed
                if endAttempt {
                    metrics.increment("almanac_invocations_total", labels: ["function": manifest.name, "outcome": outcome.rawValue])
                    log.warning("handler attempt failed", metadata: ["attempt": "\(attempt)", "error": "\(message)", "outcome": "\(outcome.rawValue)"])
                }
                try await InvocationLog.record(function: manifest.name, event: event, instance: instanceID, attempt: attempt,
                                               outcome: outcome, error: message, startedAt: endAttempt ? started : Date(),
                                               duration: endAttempt ? seconds : 0, in: database)
                if endAttempt { try await AttemptLedger.ended(function: manifest.name, event: event, in: database) }
            case .awaitAbandonedHandler:
                if let work = abandoned { await stopOrExit(work, log: log) }
                abandoned = nil
            case .retry(let attempt, let delay):
                guard let event else { return }
                try? await Task.sleep(for: delay)
                log.debug("retrying", metadata: ["attempt": "\(attempt)"])
                try await AttemptLedger.begin(function: manifest.name, event: event, instance: instanceID, in: database)
            case .deadLetter(let code, let reason, let attempts):
                try await deadLetter(record: record, event: event, code: code, error: reason, attempts: attempts, log: log)
            case .finished(let applied):
                metrics.increment("almanac_invocations_total", labels: ["function": manifest.name, "outcome": applied ? "succeeded" : "duplicate"],
                                  help: "Handler invocations by function and outcome")
            }
        }
    }

    /// Runs the handler; past the deadline the handler is cancelled, and whatever it stages
    /// later is ignored. Returns the cancelled handler's task too, for `stopOrExit`.
    func runWithDeadline(_ context: FunctionContext, timeout: Duration) async -> (AttemptStateMachine.HandlerOutcome, Task<Void, Never>?) {
        let handler = self.handler
        let event = context.event
        let gate = OnceGate<AttemptStateMachine.HandlerOutcome>()
        let work = Task {
            do {
                try await handler.handle(event, context: context)
                gate.offer(.succeeded)
            } catch let e as FunctionError {
                gate.offer(.failed("\(e)", retriable: e.isRetriable))
            } catch {
                gate.offer(.failed("\(error)", retriable: true))
            }
        }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            if !Task.isCancelled { gate.offer(.timedOut) }
        }
        let result = await gate.value
        timer.cancel()
        if case .timedOut = result {
            work.cancel()
            return (result, work)
        }
        return (result, nil)
    }

    /// How long a handler cancelled at its deadline may take to stop: a tenth of its
    /// timeout, between 1 and 10 seconds.
    var stopGrace: Duration { .milliseconds(Int(min(10, max(1, manifest.timeout / 10)) * 1000)) }

    /// Waits for a cancelled handler to stop; one that ignores cancellation past `stopGrace`
    /// takes the instance down with it (its process exits, status 70), so that none of its
    /// direct writes or HTTP calls go on beside the retry. The attempt is on record already,
    /// and the next instance carries on from Postgres.
    func stopOrExit(_ work: Task<Void, Never>, log: Logger) async {
        let stopped = OnceGate<Bool>()
        let watcher = Task { await work.value; stopped.offer(true) }
        let timer = Task { try? await Task.sleep(for: stopGrace); stopped.offer(false) }
        let ok = await stopped.value
        watcher.cancel()
        timer.cancel()
        if !ok {
            log.critical("the handler ignored cancellation past its deadline; exiting the instance so that it stops",
                         metadata: ["grace_ms": "\(stopGrace.components.seconds * 1000 + stopGrace.components.attoseconds / 1_000_000_000_000_000)"])
            onStuckHandler()
        }
    }

    /// Applies an attempt's staged effects in one transaction with the processed mark and the outbox.
    /// - Returns: false when another instance had already processed the event.
    func commit(event: CloudEvent, record: KafkaRecord, context: FunctionContext, attempt: Int, started: Date, seconds: Double) async throws -> Bool {
        let staged = context.seal()
        let name = manifest.name
        let instance = instanceID
        let cluster = clusterID
        let applied = try await database.transaction { tx -> Bool in
            guard try await ProcessedEvents.mark(event, function: name, outcome: .succeeded, in: tx) else { return false }
            try await AttemptLedger.close(function: name, event: event, in: tx)
            try await ProgressBoard.clear(function: name, event: event, in: tx)
            try await staged.apply(function: name, in: tx)
            try await ConsumerPositions.advance(function: name, cluster: cluster, past: record, in: tx)
            try await InvocationLog.record(function: name, event: event, instance: instance, attempt: attempt,
                                           outcome: .succeeded, error: nil, startedAt: started, duration: seconds, in: tx)
            return true
        }
        if !applied {
            try await AttemptLedger.close(function: name, event: event, in: database)
            try await InvocationLog.record(function: name, event: event, instance: instance, attempt: attempt, outcome: .duplicate,
                                           error: "another instance processed it first", startedAt: started, duration: seconds, in: database)
        }
        return applied
    }

    func deadLetter(record: KafkaRecord, event: CloudEvent?, code: String, error: String, attempts: Int, log: Logger) async throws {
        let letter = DeadLetter(stage: manifest.name, record: record, event: event, errorCode: code, error: error, attempts: attempts)
        let name = manifest.name
        let instance = instanceID
        let cluster = clusterID
        try await database.transaction { tx in
            try await DeadLetterStore.insert(letter, into: tx)
            try await ConsumerPositions.advance(function: name, cluster: cluster, past: record, in: tx)
            if let event {
                try await ProcessedEvents.mark(event, function: name, outcome: .deadLettered, in: tx)
                try await AttemptLedger.close(function: name, event: event, in: tx)
                try await ProgressBoard.clear(function: name, event: event, in: tx)
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

/// Records polled ahead of the handler loop, in order, with a wait that times out.
actor RecordBuffer {
    private var items: [KafkaRecord] = []
    private var head = 0
    private var waiter: (id: Int, continuation: CheckedContinuation<KafkaRecord?, Error>)?
    private var waiterCounter = 0
    private var failure: Error?

    /// Adds records; returns how many wait.
    func push(_ records: [KafkaRecord]) -> Int {
        guard !records.isEmpty else { return items.count - head }
        items.append(contentsOf: records)
        if let w = waiter {
            waiter = nil
            w.continuation.resume(returning: take())
        }
        return items.count - head
    }

    /// Ends every wait with the poller's error.
    func fail(_ error: Error) {
        failure = error
        if let w = waiter {
            waiter = nil
            w.continuation.resume(throwing: error)
        }
    }

    /// The next record, waiting up to `timeout`; nil when none came.
    func next(timeout: Duration) async throws -> KafkaRecord? {
        if let failure { throw failure }
        if head < items.count { return take() }
        waiterCounter += 1
        let id = waiterCounter
        return try await withCheckedThrowingContinuation { cont in
            waiter = (id, cont)
            Task { [weak self] in
                try? await Task.sleep(for: timeout)
                await self?.expire(id)
            }
        }
    }

    private func expire(_ id: Int) {
        guard let w = waiter, w.id == id else { return }
        waiter = nil
        w.continuation.resume(returning: nil)
    }

    private func take() -> KafkaRecord {
        let r = items[head]
        head += 1
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return r
    }
}
