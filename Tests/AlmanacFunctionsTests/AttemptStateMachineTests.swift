import AlmanacCore
@testable import AlmanacFunctions
import Testing

/// The attempt loop's decisions, driven input by input without a broker or a database.
@Suite struct AttemptStateMachineTests {
    typealias Action = AttemptStateMachine.Action

    /// Three attempts, 1 s then 2 s of backoff (the jitter drawn at its middle), a 0.5 s deadline.
    static let manifest = FunctionManifest(
        name: "fx", run: .executable("fx"), subscriptions: [], timeout: 0.5,
        retries: .init(maxAttempts: 3, initialBackoff: 1, maxBackoff: 60, multiplier: 2, jitter: 0.2))

    func machine(maxAttempts: Int? = nil) -> AttemptStateMachine {
        var m = Self.manifest
        if let maxAttempts { m.retries.maxAttempts = maxAttempts }
        return AttemptStateMachine(policy: .init(manifest: m, random: { 0.5 }))
    }

    @Test func anEventThatIsNotOneIsDeadLetteredWithoutAnAttempt() {
        var m = machine()
        #expect(m.rejected(code: "schema_violation", message: "data.dataset: required") ==
                [.deadLetter(code: "schema_violation", reason: "data.dataset: required", attempts: 0)])
        #expect(m.isDone)
    }

    @Test func aProcessedEventIsSkipped() {
        var m = machine()
        #expect(m.opened(processed: "succeeded", attempt: 0, previousDied: false) == [.skip(priorOutcome: "succeeded")])
        #expect(m.isDone)
    }

    @Test func aSucceedingHandlerIsInvokedUnderItsDeadlineThenCommitted() {
        var m = machine()
        #expect(m.opened(processed: nil, attempt: 1, previousDied: false) == [.invoke(attempt: 1, timeout: .milliseconds(500))])
        #expect(m.handlerEnded(.succeeded) == [.commit(attempt: 1)])
        #expect(!m.isDone)
        #expect(m.committed(applied: true) == [.finished(applied: true)])
        #expect(m.isDone)
    }

    @Test func aCommitAnotherInstanceWonIsFinishedNotApplied() {
        var m = machine()
        _ = m.opened(processed: nil, attempt: 1, previousDied: false)
        _ = m.handlerEnded(.succeeded)
        #expect(m.committed(applied: false) == [.finished(applied: false)])
    }

    @Test func failuresAreRetriedWithGrowingBackoffThenDeadLettered() {
        var m = machine()
        _ = m.opened(processed: nil, attempt: 1, previousDied: false)
        #expect(m.handlerEnded(.failed("HTTP 503", retriable: true)) == [
            .recordFailure(attempt: 1, kind: .failed, message: "HTTP 503", endAttempt: true),
            .retry(attempt: 2, after: .seconds(1)), .invoke(attempt: 2, timeout: .milliseconds(500)),
        ])
        #expect(m.handlerEnded(.failed("HTTP 503", retriable: true)) == [
            .recordFailure(attempt: 2, kind: .failed, message: "HTTP 503", endAttempt: true),
            .retry(attempt: 3, after: .seconds(2)), .invoke(attempt: 3, timeout: .milliseconds(500)),
        ])
        #expect(m.handlerEnded(.failed("HTTP 500", retriable: true)) == [
            .recordFailure(attempt: 3, kind: .failed, message: "HTTP 500", endAttempt: true),
            .deadLetter(code: "handler_failed", reason: "fx gave up after 3 attempts: HTTP 500", attempts: 3),
        ])
        #expect(m.isDone)
    }

    @Test func aFailureThatWillNotGetBetterIsDeadLetteredAtOnce() {
        var m = machine()
        _ = m.opened(processed: nil, attempt: 1, previousDied: false)
        #expect(m.handlerEnded(.failed("no such dataset", retriable: false)) == [
            .recordFailure(attempt: 1, kind: .failed, message: "no such dataset", endAttempt: true),
            .deadLetter(code: "handler_failed", reason: "fx gave up after 1 attempt: no such dataset", attempts: 1),
        ])
    }

    @Test func aHandlerPastItsDeadlineIsAwaitedBeforeTheRetryAndAfterTheDeadLetter() {
        var m = machine(maxAttempts: 2)
        _ = m.opened(processed: nil, attempt: 1, previousDied: false)
        let late = "handler exceeded its deadline of 0.5s (timeout in function.yaml)"
        #expect(m.handlerEnded(.timedOut) == [
            .recordFailure(attempt: 1, kind: .timedOut, message: late, endAttempt: true),
            .awaitAbandonedHandler, .retry(attempt: 2, after: .seconds(1)), .invoke(attempt: 2, timeout: .milliseconds(500)),
        ])
        #expect(m.handlerEnded(.timedOut) == [
            .recordFailure(attempt: 2, kind: .timedOut, message: late, endAttempt: true),
            .deadLetter(code: "deadline_exceeded", reason: "fx gave up after 2 attempts: \(late)", attempts: 2),
            .awaitAbandonedHandler,
        ])
    }

    @Test func aFailedCommitCountsAsAFailedAttempt() {
        var m = machine()
        _ = m.opened(processed: nil, attempt: 1, previousDied: false)
        _ = m.handlerEnded(.succeeded)
        #expect(m.commitFailed("duplicate key value violates unique constraint") == [
            .recordFailure(attempt: 1, kind: .failed, message: "duplicate key value violates unique constraint", endAttempt: true),
            .retry(attempt: 2, after: .seconds(1)), .invoke(attempt: 2, timeout: .milliseconds(500)),
        ])
    }

    @Test func anAttemptThatDiedWithItsProcessIsRecordedAndTheNextOneRuns() {
        var m = machine()
        let died = "the instance running attempt 1 died before it finished (a crash, out of memory, or a kill)"
        #expect(m.opened(processed: nil, attempt: 2, previousDied: true) == [
            .recordFailure(attempt: 1, kind: .failed, message: died, endAttempt: false),
            .invoke(attempt: 2, timeout: .milliseconds(500)),
        ])
    }

    @Test func aHandlerThatKeepsKillingItsProcessEndsCrashedWhenItsAttemptsAreSpent() {
        var m = machine()
        let died = "the instance running attempt 3 died before it finished (a crash, out of memory, or a kill)"
        #expect(m.opened(processed: nil, attempt: 4, previousDied: true) == [
            .recordFailure(attempt: 3, kind: .failed, message: died, endAttempt: false),
            .deadLetter(code: "crashed", reason: "fx gave up after 3 attempts: \(died)", attempts: 3),
        ])
        #expect(m.isDone)
    }

    @Test func attemptsSpentByAnEarlierProcessThatDidNotDieAreDeadLettered() {
        var m = machine()
        #expect(m.opened(processed: nil, attempt: 4, previousDied: false) == [
            .deadLetter(code: "handler_failed", reason: "fx gave up after 3 attempts: an earlier process gave up before dead-lettering it",
                        attempts: 3),
        ])
    }

    @Test func backoffFollowsTheManifestUpToItsCap() {
        var manifest = Self.manifest
        manifest.retries = .init(maxAttempts: 10, initialBackoff: 1, maxBackoff: 4, multiplier: 3, jitter: 0.2)
        var m = AttemptStateMachine(policy: .init(manifest: manifest, random: { 0 }))
        _ = m.opened(processed: nil, attempt: 1, previousDied: false)
        var delays: [Duration] = []
        for _ in 0..<4 {
            for case .retry(_, let after) in m.handlerEnded(.failed("x", retriable: true)) { delays.append(after) }
        }
        // 1, 3, then capped at 4; the jitter drawn at 0 takes 20 % off each.
        #expect(delays == [.milliseconds(800), .milliseconds(2400), .milliseconds(3200), .milliseconds(3200)])
    }
}
