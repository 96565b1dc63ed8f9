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

    /// A handler that ignores cancellation past its deadline takes its instance down with it:
    /// its late direct write never happens beside the retry, and the event is dead-lettered
    /// `deadline_exceeded` after its attempts.
    @Test func aHandlerPastItsDeadlineIsStoppedWithItsProcess() async throws {
        let d = try await TestDeployment(functions: [
            TestFunction(name: "stubborn", subscribe: "test.stubborn", mode: "stubborn", timeout: "300ms", maxAttempts: 2, sleepMs: 4000),
        ], partitions: 1)
        try await d.startControlPlane()
        let e = testEvent("test.stubborn", n: 1)
        try await d.publish(e)
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM dead_letters WHERE event_id = $1 AND error_code = 'deadline_exceeded'",
                                         [e.id], atLeast: 1, timeout: .seconds(60)) == 1)
        // Attempt 1 would have written at 4 s; wait until well past that by the database's clock.
        let since = try await d.db.query("SELECT min(started_at) AS t FROM invocations WHERE event_id = $1", [e.id])
        let first: Date = try since[0].decode("t")
        while Date().timeIntervalSince(first) < 6 { try await Task.sleep(for: .milliseconds(200)) }
        #expect(try await d.count("SELECT count(*) AS n FROM test_direct WHERE attempt = 1") == 0,
                "the first attempt's handler was stopped with its process")
        #expect(d.log("stubborn").contains("ignored cancellation past its deadline"))
        await d.shutdown()
    }

    /// kill -9 of `serve` while a concurrency-1 function works: its orphaned instance finishes
    /// the event in hand and exits, the next serve's instance waits for its slot, and no two
    /// runs of the function ever overlap; every event is handled exactly once.
    @Test func aConcurrencyOneFunctionNeverRunsTwiceAcrossAKilledServe() async throws {
        let d = try await TestDeployment(functions: [
            TestFunction(name: "solo", subscribe: "test.solo", mode: "sleep", idle: "20s", sleepMs: 150),
        ], partitions: 2)
        let serve = ServeProcess(deployment: d)
        try serve.start()
        defer { serve.kill(); killInstances(of: d) }
        let total = 40
        for n in 0..<total { try await d.publish(testEvent("test.solo", n: n, subject: "s\(n % 5)")) }
        for round in 0..<3 {
            // Kill serve once the function has made progress with an instance running.
            let target = (round + 1) * 8
            _ = try await d.waitForCount("SELECT count(*) AS n FROM test_effects", atLeast: target, timeout: .seconds(60))
            #expect(!instancePIDs(of: d).isEmpty, "an instance was running at the kill")
            serve.kill()
            try serve.start()
        }
        #expect(try await d.waitForCount("SELECT count(DISTINCT n) AS n FROM test_effects", atLeast: total, timeout: .seconds(120)) == total)
        #expect(try await d.count("SELECT count(*) AS n FROM test_effects") == total, "each event handled exactly once")
        let overlaps = try await d.count("""
            SELECT count(*) AS n FROM test_effects a JOIN test_effects b ON a.event_id < b.event_id
            WHERE a.started_at < b.handled_at AND b.started_at < a.handled_at
            """)
        #expect(overlaps == 0, "two runs of a concurrency-1 function overlapped")
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
