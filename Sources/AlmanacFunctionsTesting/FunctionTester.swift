import AlmanacCore
import AlmanacFunctions
import AlmanacPostgres
import Foundation
import Logging

/// Runs a function's handler on an event the way the SDK does — the same context, tenant,
/// causation and staging — without Kafka, and hands back what the handler staged instead of
/// committing it: the test sees the writes (by label), the events and the timers.
///
/// ```swift
/// let tester = FunctionTester(manifest: try FunctionManifest(file: "functions/greeter/function.yaml"))
/// let staged = try await tester.run(Greeter(), on: CloudEvent(source: "test", type: "person.arrived", json: ["name": "Ada"]))
/// #expect(staged.events.map(\.type) == ["greeting.sent"])
/// ```
///
/// A handler that reads the database needs a connection (`database:`); one that only
/// computes and stages needs none. `StagedEffects.apply(function:in:)` applies what was
/// staged in a transaction of a real Postgres, as the SDK's commit does.
public struct FunctionTester: Sendable {
    /// The function's manifest (its name, deadline and retry policy).
    public let manifest: FunctionManifest
    /// The connection `context.database` returns, if any.
    public let database: PostgresConnection?
    /// The handler's logger.
    public var logger: Logger

    /// Makes a tester for the function a manifest describes.
    public init(manifest: FunctionManifest, database: PostgresConnection? = nil, logger: Logger = Logger(label: "almanac.test")) {
        self.manifest = manifest
        self.database = database
        self.logger = logger
    }

    /// Makes a tester for a function known by name only (default deadline and retries).
    public init(function name: String, database: PostgresConnection? = nil, logger: Logger = Logger(label: "almanac.test")) {
        self.init(manifest: FunctionManifest(name: name, run: .executable(name), subscriptions: []), database: database, logger: logger)
    }

    /// Runs `handler` once on `event` as attempt `attempt`.
    /// - Returns: what it staged.
    /// - Throws: what the handler threw (the SDK would record a failed attempt).
    public func run(_ handler: any FunctionHandler, on event: CloudEvent, attempt: Int = 1) async throws -> StagedEffects {
        let context = self.context(for: event, attempt: attempt)
        try await handler.handle(event, context: context)
        return context.seal()
    }

    /// What the SDK would make of the event: the handler run attempt after attempt as the
    /// manifest's retry policy says (backoff not waited, deadline not enforced) until it
    /// succeeds or the event is dead-lettered.
    public func deliver(_ event: CloudEvent, to handler: any FunctionHandler) async -> Delivery {
        var machine = AttemptStateMachine(policy: AttemptStateMachine.Policy(manifest: manifest, random: { 0.5 }))
        var pending = machine.opened(processed: nil, attempt: 1, previousDied: false)[...]
        var failures: [String] = []
        var staged = StagedEffects()
        while let action = pending.popFirst() {
            switch action {
            case .invoke(let attempt, _):
                do {
                    staged = try await run(handler, on: event, attempt: attempt)
                    pending += machine.handlerEnded(.succeeded)
                } catch let error as FunctionError {
                    pending += machine.handlerEnded(.failed(error.message, retriable: error.isRetriable))
                } catch {
                    pending += machine.handlerEnded(.failed("\(error)", retriable: true))
                }
            case .commit:
                pending += machine.committed(applied: true)
            case .recordFailure(_, _, let message, _):
                failures.append(message)
            case .deadLetter(let code, let reason, let attempts):
                return .deadLettered(code: code, reason: reason, attempts: attempts, failures: failures)
            case .finished:
                return .committed(staged, attempts: failures.count + 1, failures: failures)
            case .skip, .retry, .awaitAbandonedHandler:
                continue
            }
        }
        preconditionFailure("the attempt state machine ended without a fate for the event")
    }

    /// How `deliver` ended.
    public enum Delivery: Sendable {
        /// The handler succeeded on attempt `attempts`; its effects would be committed.
        case committed(StagedEffects, attempts: Int, failures: [String])
        /// The event would be dead-lettered with `code` after `attempts` attempts.
        case deadLettered(code: String, reason: String, attempts: Int, failures: [String])
    }

    private func context(for event: CloudEvent, attempt: Int) -> FunctionContext {
        var log = logger
        log[metadataKey: "function"] = "\(manifest.name)"
        log[metadataKey: "event_id"] = "\(event.id)"
        return FunctionContext(manifest: manifest, event: event, attempt: attempt,
                               deadline: .now + .milliseconds(Int(manifest.timeout * 1000)), logger: log, database: database)
    }
}

extension StagedEffects {
    /// The labels of the staged writes, in order.
    public var writeLabels: [String] { writes.map(\.label) }
}
