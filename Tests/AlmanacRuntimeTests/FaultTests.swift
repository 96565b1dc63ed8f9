import AlmanacCore
import AlmanacHTTP
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
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
        // Three abnormal exits in a row: the launcher backs off and reports a crash loop.
        #expect(try await d.waitForCount("SELECT coalesce(max(consecutive), 0) AS n FROM function_crashes WHERE function = 'fragile'",
                                         atLeast: CrashLoop.loopingAfter, timeout: .seconds(60)) >= CrashLoop.loopingAfter)

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

    /// A Kafka cluster that comes back empty loses nothing Postgres knew: events the ingress
    /// acknowledged but no function finished are routed again from the archive, and an
    /// outbox row marked sent that the bus lost is relayed again; each effect exactly once.
    @Test func aBrokerThatComesBackEmptyLosesNothingPostgresKnew() async throws {
        let functions = [
            TestFunction(name: "first", subscribe: "test.empty", mode: "sleep", emit: "test.empty2", idle: "30s", sleepMs: 700),
            TestFunction(name: "second", subscribe: "test.empty2"),
        ]
        let a = try await TestDeployment(functions: functions, partitions: 1)
        let token = TenantDirectory.newToken()
        try await TenantDirectory.ensure(tenant: "acme", token: token, in: a.db)
        try await a.startControlPlane()
        let base = try await a.ingressURL()
        let events = (0..<4).map { testEvent("test.empty", n: $0, subject: "s") }
        let batch = JSONValue.array(events.map { $0.structuredJSON() })
        let r = try await HTTPClient().send(HTTPClientRequest(method: "POST", url: "\(base)/events",
                                                             headers: [("Authorization", "Bearer \(token)"), ("Content-Type", cloudEventsBatchJSONType)],
                                                             body: batch.serializedData()))
        #expect(r.status == 202)
        #expect(try await a.count("SELECT count(*) AS n FROM event_archive WHERE type = 'test.empty'") == 4, "archived before the answer")
        // Stop while the slow function is part-way through: the broker and all it held are gone.
        _ = try await a.waitForCount("SELECT count(*) AS n FROM test_effects WHERE function = 'first'", atLeast: 1)
        await a.shutdown()
        // An emitted event the old bus took (marked sent) but lost before the router saw it.
        let lost = CloudEvent(id: "lost-1", source: "almanac/first", type: "test.empty2", subject: "s", json: ["n": 99])
        let db = try await PostgresConnection.connect(url: a.databaseURL)
        try await db.exec("""
            INSERT INTO outbox (event_id, function, tenant, topic, event, sent_at) VALUES ($1, 'first', 'acme', $2, $3::jsonb, now())
            """, [lost.id, Outbox.busTopic, lost.structuredJSON().serialized()])
        await db.close()
        let handledBefore = try await { () async throws -> Int in
            let c = try await PostgresConnection.connect(url: a.databaseURL)
            defer { Task { await c.close() } }
            return Int(try await c.query("SELECT count(*) AS n FROM test_effects WHERE function = 'first'")[0].decode("n", as: Int64.self))
        }()
        #expect(handledBefore < 4, "the test stopped the first deployment before it finished (\(handledBefore))")

        let b = try await TestDeployment(functions: functions, partitions: 1, databaseURL: a.databaseURL)
        try await b.startControlPlane()
        #expect(try await b.waitForCount("SELECT count(DISTINCT n) AS n FROM test_effects WHERE function = 'first'", atLeast: 4,
                                         timeout: .seconds(60)) == 4)
        #expect(try await b.waitForCount("SELECT count(DISTINCT n) AS n FROM test_effects WHERE function = 'second'", atLeast: 5,
                                         timeout: .seconds(60)) == 5, "the four emitted events and the lost one")
        #expect(try await b.count("SELECT count(*) AS n FROM test_effects WHERE function = 'first'") == 4, "none twice")
        #expect(try await b.count("SELECT count(*) AS n FROM test_effects WHERE function = 'second'") == 5, "none twice")
        #expect(try await b.count("SELECT count(*) AS n FROM kafka_clusters WHERE reconciled_at IS NOT NULL") == 2)
        await b.shutdown()
    }

    /// `pg_ctl restart -m fast` mid-flow: the router settles its batch again once Postgres is
    /// back, instances whose connection broke exit and are started again, and every event's
    /// effect is present exactly once at both ends of a chain.
    @Test func aPostgresRestartMidFlowLosesAndDuplicatesNothing() async throws {
        let (pg, url) = try await TestPostgres.privateServer()
        defer { pg.stop(mode: "immediate") }
        let d = try await TestDeployment(functions: [
            TestFunction(name: "pg-a", subscribe: "test.pg", emit: "test.pg2", idle: "5s"),
            TestFunction(name: "pg-b", subscribe: "test.pg2", idle: "5s"),
        ], databaseURL: url)
        try await d.startControlPlane()
        let total = 60
        let publisher = Task {
            for n in 0..<total {
                try await d.publish(testEvent("test.pg", n: n, subject: "s\(n % 4)"))
                try await Task.sleep(for: .milliseconds(40))
            }
        }
        // Restart once the chain is flowing.
        let watcher = try await PostgresConnection.connect(url: url)
        while try await watcher.query("SELECT count(*) AS n FROM test_effects WHERE function = 'pg-b'")[0].decode("n", as: Int64.self) < 10 {
            try await Task.sleep(for: .milliseconds(50))
        }
        await watcher.close()
        try await offThePool { try pg.restart(mode: "fast") }
        try await publisher.value
        // The test's own connection met the restart too; it reconnects on its next statement.
        _ = try? await d.db.query("SELECT 1")
        for f in ["pg-a", "pg-b"] {
            #expect(try await d.waitForCount("SELECT count(DISTINCT n) AS n FROM test_effects WHERE function = $1", [f], atLeast: total,
                                             timeout: .seconds(120)) == total, "\(f) handled every event")
            #expect(try await d.count("SELECT count(*) AS n FROM test_effects WHERE function = $1", [f]) == total, "\(f): none twice")
        }
        #expect(try await d.count("SELECT count(*) AS n FROM event_archive WHERE type = 'test.pg'") == total)
        #expect(!d.planeEnded.isSet, "the control plane rode out the restart")
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
