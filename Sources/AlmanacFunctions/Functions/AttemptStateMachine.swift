import AlmanacCore
import Foundation

/// The decisions of one event's attempts, apart from the I/O that carries them out.
///
/// `FunctionRuntime` feeds it what happened — the event was rejected, the attempt ledger's
/// answer, how the handler ended, whether the commit applied — and performs the actions it
/// returns, in order: skip a processed event, invoke the handler under a deadline, commit,
/// record a failed attempt, wait for an abandoned handler, retry after a backoff, or
/// dead-letter with a code. It holds no connection and does no I/O, so every retry,
/// deadline and dead-letter rule is unit-tested without Postgres or Kafka (the shape that
/// swift-kafka-client and swift-aws-lambda-runtime give their loops).
///
/// ```swift
/// var machine = AttemptStateMachine(policy: .init(manifest: manifest))
/// var actions = machine.opened(processed: nil, attempt: 1, previousDied: false)   // [.invoke(attempt: 1, …)]
/// actions = machine.handlerEnded(.failed("HTTP 503", retriable: true))            // [.recordFailure(…), .retry(…)]
/// ```
public struct AttemptStateMachine: Sendable {
    /// The rules an event's attempts follow: the manifest's retry policy and deadline.
    public struct Policy: Sendable {
        /// The function's name, for the dead-letter reasons.
        public var function: String
        /// Attempts in all, the first included.
        public var maxAttempts: Int
        /// Seconds an attempt may take.
        public var timeout: Double
        /// Seconds to wait after a failed attempt (its number given) before the next.
        public var backoff: @Sendable (Int) -> Double

        /// Makes a policy.
        public init(function: String, maxAttempts: Int, timeout: Double, backoff: @escaping @Sendable (Int) -> Double) {
            self.function = function
            self.maxAttempts = maxAttempts
            self.timeout = timeout
            self.backoff = backoff
        }

        /// The manifest's policy; `random` draws the backoff's jitter (0 ..< 1).
        public init(manifest: FunctionManifest, random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
            let retries = manifest.retries
            self.init(function: manifest.name, maxAttempts: retries.maxAttempts, timeout: manifest.timeout) {
                retries.backoff(afterAttempt: $0, random: random())
            }
        }
    }

    /// How a handler's attempt ended.
    public enum HandlerOutcome: Sendable, Equatable {
        /// It returned; its staged effects are to be committed.
        case succeeded
        /// It threw (or its commit failed); `retriable: false` dead-letters at once.
        case failed(String, retriable: Bool)
        /// It overran its deadline and was cancelled.
        case timedOut
    }

    /// How a failed attempt is recorded.
    public enum FailureKind: String, Sendable, Equatable {
        /// The handler threw, its commit failed, or its process died.
        case failed
        /// The handler overran its deadline.
        case timedOut = "timed_out"
    }

    /// What the runtime is to do next.
    public enum Action: Sendable, Equatable {
        /// The event was processed before (`outcome`): record a duplicate and move past it.
        case skip(priorOutcome: String)
        /// Run the handler for attempt `attempt`, cancelled after `timeout`.
        case invoke(attempt: Int, timeout: Duration)
        /// Commit the attempt's staged effects with the processed mark, in one transaction.
        case commit(attempt: Int)
        /// Record a failed attempt in the invocation log; `endAttempt` also marks it ended in
        /// the ledger (false for an attempt whose process died: the ledger already moved on).
        case recordFailure(attempt: Int, kind: FailureKind, message: String, endAttempt: Bool)
        /// Wait for the handler cancelled at its deadline to stop; one that will not stop takes the process down.
        case awaitAbandonedHandler
        /// Wait `after`, then begin attempt `attempt` in the ledger (an `invoke` follows).
        case retry(attempt: Int, after: Duration)
        /// Dead-letter the event (table and topic) with a code and a reason, after `attempts` attempts.
        case deadLetter(code: String, reason: String, attempts: Int)
        /// The event's fate is settled: `applied` false when another instance committed it first.
        case finished(applied: Bool)
    }

    /// Where the event stands.
    enum State: Sendable, Equatable {
        case received
        case running(attempt: Int)
        case committing(attempt: Int)
        case done
    }

    /// The rules.
    public let policy: Policy
    private(set) var state = State.received

    /// A machine for one event.
    public init(policy: Policy) { self.policy = policy }

    /// Whether the event's fate is settled (skipped, committed or dead-lettered).
    public var isDone: Bool { state == .done }

    /// The event could not be decoded or broke its schema: dead-lettered with the error's code, no attempt made.
    public mutating func rejected(code: String, message: String) -> [Action] {
        precondition(state == .received, "an event is rejected before its first attempt, not in \(state)")
        state = .done
        return [.deadLetter(code: code, reason: message, attempts: 0)]
    }

    /// The attempt ledger answered: the event's prior outcome if processed, else the number of
    /// the attempt now begun and whether the one before it died with its process.
    public mutating func opened(processed: String?, attempt: Int, previousDied: Bool) -> [Action] {
        precondition(state == .received, "the ledger is opened once per event, not in \(state)")
        if let processed {
            state = .done
            return [.skip(priorOutcome: processed)]
        }
        var actions: [Action] = []
        var lastFailure = "an earlier process gave up before dead-lettering it"
        if previousDied {
            lastFailure = "the instance running attempt \(attempt - 1) died before it finished (a crash, out of memory, or a kill)"
            actions.append(.recordFailure(attempt: attempt - 1, kind: .failed, message: lastFailure, endAttempt: false))
        }
        if attempt > policy.maxAttempts {
            state = .done
            actions.append(.deadLetter(code: previousDied ? "crashed" : "handler_failed",
                                       reason: gaveUp(after: attempt - 1, lastFailure), attempts: attempt - 1))
            return actions
        }
        state = .running(attempt: attempt)
        actions.append(.invoke(attempt: attempt, timeout: timeout))
        return actions
    }

    /// The handler's attempt ended.
    public mutating func handlerEnded(_ outcome: HandlerOutcome) -> [Action] {
        guard case .running(let attempt) = state else { preconditionFailure("no attempt is running in \(state)") }
        switch outcome {
        case .succeeded:
            state = .committing(attempt: attempt)
            return [.commit(attempt: attempt)]
        case .failed(let message, let retriable):
            return failed(attempt: attempt, kind: .failed, message: message, retriable: retriable, abandoned: false)
        case .timedOut:
            let message = "handler exceeded its deadline of \(Self.seconds(policy.timeout))s (timeout in function.yaml)"
            return failed(attempt: attempt, kind: .timedOut, message: message, retriable: true, abandoned: true)
        }
    }

    /// The commit transaction failed (not for a lost connection, which the runtime throws):
    /// the attempt counts as failed and is retried.
    public mutating func commitFailed(_ message: String) -> [Action] {
        guard case .committing(let attempt) = state else { preconditionFailure("no commit is in hand in \(state)") }
        return failed(attempt: attempt, kind: .failed, message: message, retriable: true, abandoned: false)
    }

    /// The commit transaction ended; `applied` false when another instance had processed the event.
    public mutating func committed(applied: Bool) -> [Action] {
        guard case .committing = state else { preconditionFailure("no commit is in hand in \(state)") }
        state = .done
        return [.finished(applied: applied)]
    }

    private mutating func failed(attempt: Int, kind: FailureKind, message: String, retriable: Bool, abandoned: Bool) -> [Action] {
        var actions: [Action] = [.recordFailure(attempt: attempt, kind: kind, message: message, endAttempt: true)]
        if !retriable || attempt >= policy.maxAttempts {
            state = .done
            actions.append(.deadLetter(code: kind == .timedOut ? "deadline_exceeded" : "handler_failed",
                                       reason: gaveUp(after: attempt, message), attempts: attempt))
            if abandoned { actions.append(.awaitAbandonedHandler) }
            return actions
        }
        if abandoned { actions.append(.awaitAbandonedHandler) }
        state = .running(attempt: attempt + 1)
        actions.append(.retry(attempt: attempt + 1, after: .milliseconds(Int(policy.backoff(attempt) * 1000))))
        actions.append(.invoke(attempt: attempt + 1, timeout: timeout))
        return actions
    }

    private var timeout: Duration { .milliseconds(Int(policy.timeout * 1000)) }

    private func gaveUp(after attempts: Int, _ why: String) -> String {
        "\(policy.function) gave up after \(attempts) attempt\(attempts == 1 ? "" : "s"): \(why)"
    }

    /// `2`, not `2.0`, for whole seconds (as the manifest is usually written).
    static func seconds(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}
