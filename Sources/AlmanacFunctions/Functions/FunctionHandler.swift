import AlmanacCore
import AlmanacPostgres
import Foundation
import Logging

/// What a function implements: handle one event.
///
/// The handler computes; it does not commit. Database writes go through
/// `context.write { tx in … }` and new events through `context.emit(…)`: the SDK applies
/// them after the handler returns, in one transaction with the event's processed mark and
/// the outbox, so an event's effects happen exactly once even though Kafka delivers at
/// least once. Throwing fails the attempt; the SDK retries per the manifest, then dead-letters.
///
/// ```swift
/// struct Greeter: FunctionHandler {
///     func handle(_ event: CloudEvent, context: FunctionContext) async throws {
///         context.emit(type: "greeting.sent", json: ["to": event.jsonData?["name"] ?? "world"])
///     }
/// }
/// ```
public protocol FunctionHandler: Sendable {
    /// Handles one event.
    /// - Important: do not write to the database outside `context.write`, or a redelivered
    ///   event may apply its effects twice.
    func handle(_ event: CloudEvent, context: FunctionContext) async throws
}

/// A handler made from a closure, for the smallest functions and for tests.
public struct ClosureFunctionHandler: FunctionHandler {
    let body: @Sendable (CloudEvent, FunctionContext) async throws -> Void

    /// Wraps a closure.
    public init(_ body: @escaping @Sendable (CloudEvent, FunctionContext) async throws -> Void) {
        self.body = body
    }

    /// Calls the closure.
    public func handle(_ event: CloudEvent, context: FunctionContext) async throws {
        try await body(event, context)
    }
}

/// A handler of one event type whose data it receives decoded; `TypedHandler` adapts it to
/// the raw `FunctionHandler` the SDK runs, so an event whose data does not decode is refused
/// (dead-lettered at once, with the field that is wrong) before the handler sees it.
///
/// ```swift
/// struct Exporter: EventHandler {
///     func handle(_ created: ForecastCreated, event: CloudEvent, context: FunctionContext) async throws { … }
/// }
/// await FunctionMain.run(TypedHandler(Exporter()))
/// ```
public protocol EventHandler: Sendable {
    /// The payload it handles.
    associatedtype Input: EventPayload
    /// Handles one event, its data decoded.
    func handle(_ input: Input, event: CloudEvent, context: FunctionContext) async throws
}

/// The raw handler over an `EventHandler`: decodes the event's data, then calls it.
public struct TypedHandler<Handler: EventHandler>: FunctionHandler {
    /// The typed handler.
    public let handler: Handler

    /// Wraps a typed handler.
    public init(_ handler: Handler) { self.handler = handler }

    /// Decodes and handles; data that does not decode fails the attempt without a retry.
    public func handle(_ event: CloudEvent, context: FunctionContext) async throws {
        try await handler.handle(event.payload(Handler.Input.self), event: event, context: context)
    }
}

extension CloudEvent {
    /// The event's data as `Payload`, for a handler: a mismatch is a `FunctionError` that is not
    /// retried (bad input will not get better), naming the field.
    public func payload<Payload: EventPayload>(_ type: Payload.Type) throws -> Payload {
        do { return try decode(type) } catch let error as EventError {
            throw FunctionError(error.message, retriable: false)
        }
    }
}

/// What a handler sees of one attempt: its logger, the database for reads, and the
/// effects and events it stages for the SDK to commit.
public final class FunctionContext: @unchecked Sendable {
    // `staged` and `sealed` are guarded by `lock`: a handler may stage from child tasks.
    private let lock = NSLock()
    private var staged = StagedEffects()
    private var sealed = false
    private let connection: PostgresConnection?
    private let progressSink: (@Sendable (JSONValue) -> Void)?

    /// The function's manifest.
    public let manifest: FunctionManifest
    /// The event being handled.
    public let event: CloudEvent
    /// Which attempt this is, from 1.
    public let attempt: Int
    /// When the attempt must be done.
    public let deadline: ContinuousClock.Instant
    /// A logger carrying the function, event id, type, tenant and trace id.
    public let logger: Logger

    /// Makes a context; `database` nil for a handler run without one (`FunctionTester`);
    /// `progress` receives what the handler reports (kept in `StagedEffects.progress` when nil).
    package init(manifest: FunctionManifest, event: CloudEvent, attempt: Int, deadline: ContinuousClock.Instant,
                 logger: Logger, database: PostgresConnection?, progress: (@Sendable (JSONValue) -> Void)? = nil) {
        self.progressSink = progress
        self.manifest = manifest
        self.event = event
        self.attempt = attempt
        self.deadline = deadline
        self.logger = logger
        self.connection = database
    }

    /// A connection for reads while computing (each statement commits on its own).
    /// - Throws: `FunctionError` when the handler runs without a database (a test that gave none).
    public var database: PostgresConnection {
        get throws {
            guard let connection else {
                throw FunctionError("\(manifest.name) read the database, but this run has none (give FunctionTester a connection)", retriable: false)
            }
            return connection
        }
    }

    /// Stages database writes; they run in the commit transaction, after the handler returns.
    /// - Parameter label: what the write does, for logs and tests (default: where it was staged).
    public func write(_ label: String? = nil, file: String = #fileID, line: Int = #line,
                      _ effect: @escaping @Sendable (PostgresTransaction) async throws -> Void) {
        stage { $0.writes.append(StagedWrite(label: label ?? "\(file):\(line)", apply: effect)) }
    }

    /// Reports how far the attempt got (`["items_done": 120, "items_total": 414]`): shown by
    /// `almanac status` while the attempt runs (written at most about once a second, and logged
    /// then) and cleared with the event's outcome. Progress is not an effect: it is written
    /// outside the commit, and may be reported as often as the handler likes.
    public func progress(_ fields: JSONValue) {
        if let progressSink {
            lock.lock()
            let open = !sealed
            lock.unlock()
            if open { progressSink(fields) }
        } else {
            stage { $0.progress.append(fields) }
        }
    }

    /// Stages an event to emit; it is produced to the bus after the commit.
    public func emit(_ event: CloudEvent) {
        stage { $0.events.append(event) }
    }

    /// Stages an event caused by the one being handled: it inherits tenant, trace, subject
    /// and correlation, with this event as its cause and `almanac/<function>` as its source.
    public func emit(type: String, subject: String? = nil, json: JSONValue) {
        emit(caused(type: type, subject: subject, json: json))
    }

    /// Stages an event caused by the one being handled, to be published no earlier than
    /// `date` (a timer: the control plane's scheduler relays it when due).
    public func emit(type: String, subject: String? = nil, json: JSONValue, at date: Date) {
        let later = caused(type: type, subject: subject, json: json)
        stage { $0.scheduled.append(ScheduledEvent(event: later, date: date)) }
    }

    /// Stages a typed event caused by the one being handled (`context.emit(ForecastCreated(…), subject: name)`).
    public func emit<Payload: EventPayload>(_ payload: Payload, subject: String? = nil) {
        emit(type: Payload.eventType, subject: subject, json: payload.json())
    }

    /// Stages a typed event caused by the one being handled, to be published no earlier than `date`.
    public func emit<Payload: EventPayload>(_ payload: Payload, subject: String? = nil, at date: Date) {
        emit(type: Payload.eventType, subject: subject, json: payload.json(), at: date)
    }

    /// An event caused by the one being handled, from this function.
    func caused(type: String, subject: String?, json: JSONValue) -> CloudEvent {
        event.caused(type: type, source: "almanac/\(manifest.name)", subject: subject, json: json)
    }

    private func stage(_ change: (inout StagedEffects) -> Void) {
        lock.lock(); defer { lock.unlock() }
        guard !sealed else { return }
        change(&staged)
    }

    /// How many events were staged.
    var emittedCount: Int {
        lock.lock(); defer { lock.unlock() }
        return staged.events.count + staged.scheduled.count
    }

    /// Takes what was staged and refuses anything staged later (by a handler that overran its deadline).
    package func seal() -> StagedEffects {
        lock.lock(); defer { lock.unlock() }
        sealed = true
        return staged
    }
}

/// What a handler staged in one attempt: applied by the SDK in the commit transaction, or
/// inspected by a test (`FunctionTester`).
public struct StagedEffects: Sendable {
    /// Database writes, in the order they were staged.
    public var writes: [StagedWrite] = []
    /// Events to produce after the commit.
    public var events: [CloudEvent] = []
    /// Events to publish no earlier than a date.
    public var scheduled: [ScheduledEvent] = []
    /// Progress reported, in order (kept only where no progress board receives it: `FunctionTester`).
    public var progress: [JSONValue] = []

    /// Nothing staged.
    public init() {}

    /// Applies the writes, then puts the events in the outbox (due now or later), in `tx`.
    public func apply(function: String, in tx: PostgresTransaction) async throws {
        for write in writes { try await write.apply(tx) }
        try await Outbox.enqueue(events, function: function, in: tx)
        for s in scheduled { try await Outbox.schedule(s.event, at: s.date, function: function, in: tx) }
    }
}

/// One staged database write.
public struct StagedWrite: Sendable {
    /// What it does (given by the handler) or where it was staged (`file:line`).
    public let label: String
    /// The write itself, run in the commit transaction.
    public let apply: @Sendable (PostgresTransaction) async throws -> Void
}

/// An event staged for publication at a later time.
public struct ScheduledEvent: Sendable {
    /// The event.
    public let event: CloudEvent
    /// When it is due.
    public let date: Date
}

/// Errors a handler can throw to steer the SDK.
public struct FunctionError: Error, CustomStringConvertible, Sendable {
    /// What the handler says went wrong.
    public var message: String
    /// When false, the SDK dead-letters at once instead of retrying (bad input will not get better).
    public var isRetriable: Bool

    /// Makes an error.
    public init(_ message: String, retriable: Bool = true) {
        self.message = message
        self.isRetriable = retriable
    }

    /// The message.
    public var description: String { message }
}
