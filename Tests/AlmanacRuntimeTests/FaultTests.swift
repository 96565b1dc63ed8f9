import AlmanacCore
import AlmanacPostgres
@testable import AlmanacRuntime
import Foundation
import Testing

/// Failures of the runtime's own parts and of handlers that take their process down.
@Suite(.serialized) struct FaultTests {
    /// A handler that aborts its whole process on one event spends that event's attempts
    /// across restarts (they are counted in Postgres before it runs), is dead-lettered
    /// `crashed` after `maxAttempts`, and the events behind it on the same partition are handled.
    @Test func aHandlerThatAbortsItsProcessIsDeadLetteredAfterMaxAttempts() async throws {
        let d = try await TestDeployment(functions: [
            TestFunction(name: "fragile", subscribe: "test.fragile", mode: "abort_on_poison", maxAttempts: 3),
        ], partitions: 1)
        try await d.startControlPlane()
        var poison = CloudEvent(source: "test", type: "test.fragile", subject: "s", json: ["n": 0, "poison": true])
        poison.traceparent = CloudEvent.newTraceparent()
        try await d.publish(poison)
        let after = (1...5).map { testEvent("test.fragile", n: $0, subject: "s") }
        for e in after { try await d.publish(e) }

        #expect(try await d.waitForCount("SELECT count(*) AS n FROM test_effects WHERE function = 'fragile'", atLeast: 5, timeout: .seconds(120)) == 5,
                "the events behind the poison were handled")
        let letter = try #require(try await d.db.query("SELECT error_code, attempts, error FROM dead_letters WHERE event_id = $1", [poison.id]).first)
        #expect(letter.text("error_code") == "crashed")
        #expect(letter.text("attempts") == "3")
        #expect(letter.text("error")?.contains("died before it finished") == true)
        let died = try await d.count("""
            SELECT count(*) AS n FROM invocations WHERE event_id = $1 AND outcome = 'failed' AND error LIKE '%died before it finished%'
            """, [poison.id])
        #expect(died == 3, "each of the three attempts is on record as died")
        #expect(try await d.count("SELECT count(*) AS n FROM event_attempts") == 0, "no attempt left open")
        #expect(try await d.count("SELECT count(*) AS n FROM test_effects WHERE event_id = $1", [poison.id]) == 0)
        #expect(try await d.count("SELECT count(*) AS n FROM processed_events WHERE function = 'fragile' AND outcome = 'succeeded'") == 5)
        #expect(!d.planeEnded.isSet)
        await d.shutdown()
    }

    @Test func crashLoopsBackOffExponentiallyUpToACap() {
        var loop = CrashLoop()
        var delays: [Double] = []
        for _ in 0..<10 {
            loop.record("killed by signal 6")
            delays.append(loop.delay)
        }
        #expect(delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30])
        #expect(loop.isLooping && loop.lastStatus == "killed by signal 6")
        var fresh = CrashLoop()
        fresh.record("exit 1")
        fresh.record("exit 1")
        #expect(!fresh.isLooping)
        fresh.record("exit 1")
        #expect(fresh.isLooping)
    }
}
