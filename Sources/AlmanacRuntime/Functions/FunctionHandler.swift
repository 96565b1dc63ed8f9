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

/// What a handler sees of one attempt: its logger, the database for reads, and the
/// effects and events it stages for the SDK to commit.
public final class FunctionContext: @unchecked Sendable {
    // `effects`, `emitted` and `sealed` are guarded by `lock`: a handler may stage from child tasks.
    private let lock = NSLock()
    private var effects: [@Sendable (PostgresTransaction) async throws -> Void] = []
    private var emitted: [CloudEvent] = []
    private var sealed = false

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
    /// A connection for reads while computing (each statement commits on its own).
    public let database: PostgresConnection

    init(manifest: FunctionManifest, event: CloudEvent, attempt: Int, deadline: ContinuousClock.Instant,
         logger: Logger, database: PostgresConnection) {
        self.manifest = manifest
        self.event = event
        self.attempt = attempt
        self.deadline = deadline
        self.logger = logger
        self.database = database
    }

    /// Stages database writes; they run in the commit transaction, after the handler returns.
    public func write(_ effect: @escaping @Sendable (PostgresTransaction) async throws -> Void) {
        lock.lock(); defer { lock.unlock() }
        guard !sealed else { return }
        effects.append(effect)
    }

    /// Stages an event to emit; it is produced to the bus after the commit.
    public func emit(_ event: CloudEvent) {
        lock.lock(); defer { lock.unlock() }
        guard !sealed else { return }
        emitted.append(event)
    }

    /// Stages an event caused by the one being handled: it inherits tenant, trace, subject
    /// and correlation, with this event as its cause and `almanac/<function>` as its source.
    public func emit(type: String, subject: String? = nil, json: JSONValue) {
        emit(event.caused(type: type, source: "almanac/\(manifest.name)", subject: subject, json: json))
    }

    /// Stages an event caused by the one being handled, to be published no earlier than
    /// `date` (a timer: the control plane's scheduler relays it when due).
    public func emit(type: String, subject: String? = nil, json: JSONValue, at date: Date) {
        let later = event.caused(type: type, source: "almanac/\(manifest.name)", subject: subject, json: json)
        let function = manifest.name
        write { tx in try await Outbox.schedule(later, at: date, function: function, in: tx) }
    }

    /// How many events were staged.
    var emittedCount: Int {
        lock.lock(); defer { lock.unlock() }
        return emitted.count
    }

    /// Takes what was staged and refuses anything staged later (by a handler that overran its deadline).
    func seal() -> (effects: [@Sendable (PostgresTransaction) async throws -> Void], events: [CloudEvent]) {
        lock.lock(); defer { lock.unlock() }
        sealed = true
        return (effects, emitted)
    }
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
