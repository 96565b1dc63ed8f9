import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Testing

/// Every kind of bad input ends with a clear error and a dead letter (or a counted no-match),
/// and the pipeline keeps running.
@Suite(.serialized) struct BadInputTests {
    static let schema = """
        {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer", "minimum": 0}}}
        """

    @Test func eachBadInputIsDeadLetteredWithAClearErrorAndThePipelineGoesOn() async throws {
        let d = try await TestDeployment(functions: [
            TestFunction(name: "good", subscribe: "test.good"),
            TestFunction(name: "thrower", subscribe: "test.throw", mode: "fail", maxAttempts: 3),
            TestFunction(name: "refuser", subscribe: "test.refuse", mode: "reject", maxAttempts: 5),
            TestFunction(name: "slowpoke", subscribe: "test.slow", mode: "sleep", timeout: "300ms", maxAttempts: 2, sleepMs: 5000),
        ], schemas: ["test.good": BadInputTests.schema])
        try await d.startControlPlane()

        // 1. A record that is not a CloudEvent in any mode.
        try await d.publishRaw(key: Data("k".utf8), value: Data("\u{1}\u{2}garbage".utf8))
        // 2. A binary-mode CloudEvent missing required attributes (no ce_type, no ce_source).
        try await d.publishRaw(value: Data("{}".utf8), headers: [("ce_specversion", Data("1.0".utf8)), ("ce_id", Data("no-type".utf8))])
        // 3. Data failing its type's schema.
        let badData = CloudEvent(id: "bad-schema", source: "test", type: "test.good", json: ["n": -4])
        try await d.publish(badData)
        // 4. An event no function subscribes to.
        try await d.publish(CloudEvent(id: "nobody", source: "test", type: "test.unwanted", json: [:]))
        // 5. A handler that throws, every time.
        try await d.publish(testEvent("test.throw", n: 1))
        // 6. A handler that refuses (non-retriable): dead-lettered after one attempt.
        try await d.publish(testEvent("test.refuse", n: 1))
        // 7. A handler that runs past its deadline.
        try await d.publish(testEvent("test.slow", n: 1))
        // And after all that, a good event still goes through.
        let good = testEvent("test.good", n: 7)
        try await d.publish(good)

        #expect(try await d.waitForCount("SELECT count(*) AS n FROM dead_letters", atLeast: 6, timeout: .seconds(60)) == 6)
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM test_effects WHERE event_id = $1", [good.id], atLeast: 1) == 1)

        let letters = try await d.db.query("SELECT stage, event_id, error_code, error, attempts, record_value FROM dead_letters ORDER BY id")
        func letter(_ code: String, stage: String) -> PostgresRow? {
            letters.first { $0.text("error_code") == code && $0.text("stage") == stage }
        }
        let undecodable = try #require(letter("undecodable", stage: "router"))
        #expect(undecodable.text("error")?.contains("not a CloudEvent") == true)
        #expect(try undecodable.decodeIfPresent("record_value", as: Data.self) == Data("\u{1}\u{2}garbage".utf8), "the original bytes are kept")
        let invalid = try #require(letter("invalid_event", stage: "router"))
        #expect(invalid.text("error")?.contains("missing required attributes 'source', 'type'") == true)
        let schema = try #require(letter("schema_violation", stage: "router"))
        #expect(schema.text("event_id") == "bad-schema")
        #expect(schema.text("error")?.contains("/n: must be ≥ 0, got -4") == true)
        let thrown = try #require(letter("handler_failed", stage: "thrower"))
        #expect(thrown.text("attempts") == "3")
        #expect(thrown.text("error")?.contains("gave up after 3 attempts: test function told to fail") == true)
        let refused = try #require(letter("handler_failed", stage: "refuser"))
        #expect(refused.text("attempts") == "1", "a non-retriable error is not retried")
        let late = try #require(letter("deadline_exceeded", stage: "slowpoke"))
        #expect(late.text("error")?.contains("exceeded its deadline of 0.3s") == true)
        #expect(late.text("attempts") == "2")

        // The no-match event is counted and logged, not dead-lettered.
        #expect(MetricsRegistry.shared.counter("almanac_events_unmatched_total", labels: ["type": "test.unwanted"]) >= 1)
        #expect(letters.allSatisfy { $0.text("event_id") != "nobody" })
        // One invocation record per attempt.
        #expect(try await d.count("SELECT count(*) AS n FROM invocations WHERE function = 'thrower' AND outcome = 'failed'") == 3)
        #expect(try await d.count("SELECT count(*) AS n FROM invocations WHERE function = 'slowpoke' AND outcome = 'timed_out'") == 2)
        // The dead letters were also produced to the dead-letter topic.
        let dlq = try KafkaAdmin(configuration: d.cluster.configuration)
        var produced: Int64 = 0
        let deadline = ContinuousClock.now + .seconds(20)
        while produced < 6 && ContinuousClock.now < deadline {
            produced = 0
            for p in 0..<2 { produced += try await dlq.watermarks(topic: DeadLetter.topic, partition: Int32(p)).high }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(produced == 6)
        // Logs say what went wrong, with the event id.
        #expect(d.log("thrower").contains("\"msg\":\"event dead-lettered\""))
        await d.shutdown()
    }

    @Test func aRedrivenDeadLetterRunsAgain() async throws {
        let d = try await TestDeployment(functions: [
            TestFunction(name: "flaky", subscribe: "test.flaky", mode: "fail_unless_flag", maxAttempts: 2),
        ])
        try await d.startControlPlane()
        let e = testEvent("test.flaky", n: 3)
        try await d.publish(e)
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM dead_letters WHERE status = 'open'", atLeast: 1) == 1)
        // Fix the cause, then redrive: the event is handled, once.
        try await d.db.exec("INSERT INTO test_flags (name) VALUES ('flaky')")
        let redriven = try await DeadLetterStore.redrive(ids: [], all: true, db: d.db, producer: d.producer)
        #expect(redriven.map(\.topic) == ["almanac.fn.flaky"])
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM test_effects WHERE event_id = $1", [e.id], atLeast: 1) == 1)
        #expect(try await d.count("SELECT count(*) AS n FROM dead_letters WHERE status = 'redriven'") == 1)
        await d.shutdown()
    }

    @Test func execAdapterRunsAPythonFunction() async throws {
        let script = """
            import json, sys
            for line in sys.stdin:
                req = json.loads(line)
                data = req["event"].get("data") or {}
                if data.get("n", 0) < 0:
                    print(json.dumps({"ok": False, "error": "n must not be negative", "retriable": False}), flush=True)
                    continue
                print(json.dumps({"log": "doubling %d" % data["n"]}), flush=True)
                # Its row is handed back: the SDK writes it in the commit transaction, with the event.
                tenant = "globex" if data["n"] == 7 else req["event"].get("tenant", "default")
                write = {"insert": "test_effects", "rows": [{"function": "doubler", "event_id": req["event"]["id"], "n": data["n"] * 2,
                                                             "tenant": tenant}]}
                print(json.dumps({"ok": True, "emit": [{"type": "test.doubled", "data": {"n": data["n"] * 2}}], "write": [write]}), flush=True)
            """
        let d = try await TestDeployment(functions: [
            TestFunction(name: "doubler", subscribe: "test.double", command: ["python3", "doubler.py"], files: ["doubler.py": script]),
            TestFunction(name: "sink", subscribe: "test.doubled"),
        ])
        try await d.startControlPlane()
        try await d.db.exec("ALTER TABLE test_effects ADD COLUMN tenant text")
        let doubled = testEvent("test.double", n: 21)
        try await d.publish(doubled)
        try await d.publish(testEvent("test.double", n: -1))
        try await d.publish(testEvent("test.double", n: 7))
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM test_effects WHERE function = 'sink'", atLeast: 1) == 1)
        #expect(try await d.db.query("SELECT n FROM test_effects WHERE function = 'sink'").first?.decode("n", as: Int.self) == 42)
        // The row the program handed back was committed with the event, once.
        let handed = try await d.db.query("SELECT n, tenant FROM test_effects WHERE function = 'doubler' AND event_id = $1", [doubled.id])
        #expect(handed.count == 1 && handed.first?.text("n") == "42" && handed.first?.text("tenant") == doubled.tenant)
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM dead_letters WHERE stage = 'doubler'", atLeast: 2) == 2)
        let errors = try await d.db.query("SELECT error, attempts FROM dead_letters WHERE stage = 'doubler' ORDER BY id")
        #expect(errors.contains { $0.text("error")?.contains("n must not be negative") == true && $0.text("attempts") == "1" })
        // A write naming another tenant is refused at once, and nothing of that answer lands.
        #expect(errors.contains { $0.text("error")?.contains("answer write[0].rows[0]: tenant \"globex\" is not the event's tenant") == true
                                 && $0.text("attempts") == "1" })
        #expect(try await d.count("SELECT count(*) AS n FROM test_effects WHERE n = 14") == 0)
        #expect(d.log("doubler").contains("doubling 21"))
        await d.shutdown()
    }
}
