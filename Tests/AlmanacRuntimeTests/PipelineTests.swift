import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Testing

/// End-to-end runs on real Postgres and the librdkafka mock cluster, with real function processes.
@Suite(.serialized) struct PipelineTests {
    @Test func threeFunctionChainRunsEndToEnd() async throws {
        let d = try await TestDeployment(functions: [
            TestFunction(name: "step-a", subscribe: "test.start", emit: "test.middle"),
            TestFunction(name: "step-b", subscribe: "test.middle", emit: "test.end"),
            TestFunction(name: "step-c", subscribe: "test.end"),
        ])
        try await d.startControlPlane()
        var starts: [CloudEvent] = []
        for n in 0..<20 {
            let e = testEvent("test.start", n: n, subject: "ds\(n % 3)")
            starts.append(e)
            try await d.publish(e)
        }
        let done = try await d.waitForCount("SELECT count(*) AS n FROM test_effects WHERE function = 'step-c'", atLeast: 20)
        #expect(done == 20)
        for step in ["step-a", "step-b", "step-c"] {
            let rows = try await d.db.query("SELECT count(*) AS n, count(DISTINCT n) AS distinct_n FROM test_effects WHERE function = $1", [step])
            #expect(try rows[0].decode("n", as: Int.self) == 20, "\(step) handled each event once")
            #expect(try rows[0].decode("distinct_n", as: Int.self) == 20)
        }
        // Lineage: every test.end event traces back to its start through causation and correlation.
        let first = starts[0]
        let chain = try await EventArchive.select(in: d.db, .init(causation: first.id))
        #expect(chain.map(\.type) == ["test.start", "test.middle", "test.end"])
        #expect(chain.dropFirst().allSatisfy { $0.correlationID == first.id && $0.traceparent == first.traceparent })
        // Each handled attempt has an invocation record.
        #expect(try await d.count("SELECT count(*) AS n FROM invocations WHERE outcome = 'succeeded'") == 60)
        // `almanac status` reads the same from its stores: each function's 20 successes, nothing
        // in progress any more, no dead letters.
        let status = try await d.almanac(["status", "--functions", "\(d.directory)/functions"])
        #expect(status.status == 0, "\(status.output)")
        for step in ["step-a", "step-b", "step-c"] {
            let row = status.output.split(separator: "\n").first { $0.hasPrefix(step) }.map(String.init) ?? ""
            #expect(row.split(separator: " ").contains("20"), "\(step)'s row counts 20 successes: \(status.output)")
        }
        #expect(status.output.contains("IN PROGRESS\nnothing reported") && status.output.contains("DEAD LETTERS (open)\nnone"), "\(status.output)")
        await d.shutdown()
    }

    @Test func idleInstancesExitAndANewEventStartsOneAgain() async throws {
        let d = try await TestDeployment(functions: [TestFunction(name: "napper", subscribe: "test.nap", idle: "1s")])
        try await d.startControlPlane()
        try await d.publish(testEvent("test.nap", n: 1))
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM test_effects", atLeast: 1) == 1)
        // Scale to zero: the instance exits after its idle timeout and the launcher reaps it.
        #expect(try await d.waitForLauncher { $0.instances.isEmpty })
        #expect(d.log("napper").contains("idle, exiting"))
        // Idle is a clean exit (status 0), not a crash the launcher would back off from.
        #expect(try await d.count("SELECT count(*) AS n FROM function_crashes WHERE function = 'napper'") == 0)
        #expect(d.log("napper").contains(#""reason":"idle""#))
        try await d.publish(testEvent("test.nap", n: 2))
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM test_effects", atLeast: 2) == 2)
        let instances = try await d.db.query("SELECT DISTINCT instance FROM test_effects")
        #expect(instances.count == 2, "the second event was handled by a newly started instance")
        await d.shutdown()
    }

    @Test func aNewBrokerWithTheSameDatabaseStartsFromItsOwnOffsets() async throws {
        // The embedded mock broker forgets everything when it restarts; Postgres remembers
        // where functions had got to in the old one. Those positions must not apply to the new one.
        let functions = [TestFunction(name: "survivor", subscribe: "test.survive", idle: "500ms")]
        let first = try await TestDeployment(functions: functions)
        try await first.startControlPlane()
        for n in 0..<3 { try await first.publish(testEvent("test.survive", n: n, subject: "same")) }
        #expect(try await first.waitForCount("SELECT count(*) AS n FROM test_effects", atLeast: 3) == 3)
        #expect(try await first.waitForLauncher { $0.instances.isEmpty })
        await first.shutdown()

        // Four events wait on the new broker before anything runs, so the old position (3)
        // lies inside the new partition's range: only the cluster id tells it is stale.
        let second = try await TestDeployment(functions: functions, databaseURL: first.databaseURL)
        for n in 10..<14 { try await second.publish(testEvent("test.survive", n: n, subject: "same")) }
        try await second.startControlPlane()
        // Waits as long as events keep being handled (a skipped one stops the count for good).
        #expect(try await second.waitForProgress("SELECT count(*) AS n FROM test_effects", atLeast: 7) == 7,
                "every event on the new broker is handled from its offset 0, none skipped")
        #expect(try await second.count("SELECT count(DISTINCT cluster_id) AS n FROM consumer_positions") == 2)
        await second.shutdown()
    }

    @Test func gpuFunctionsGetSlotsFromTheInventoryAndQueueWhenItIsUsedUp() async throws {
        let d = try await TestDeployment(functions: [
            TestFunction(name: "gpu-a", subscribe: "test.gpu", mode: "sleep", idle: "500ms", gpu: "required", sleepMs: 2000),
            TestFunction(name: "gpu-b", subscribe: "test.gpu", mode: "sleep", idle: "500ms", gpu: "required", sleepMs: 2000),
            TestFunction(name: "pref", subscribe: "test.pref", idle: "500ms", gpu: "preferred"),
        ])
        d.gpus = GPUInventory(slots: ["7"])
        try await d.startControlPlane()
        try await d.publish(testEvent("test.gpu", n: 1))
        // One of the two GPU functions holds slot 7; the other waits in the visible queue.
        #expect(try await d.waitForLauncher { snap in
            snap.gpuQueue.count == 1 && snap.instances.contains { $0.gpu == "7" }
        })
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM gpu_queue", atLeast: 1) == 1)
        // While the slot is taken, a `preferred` function runs on CPU instead of waiting.
        try await d.publish(testEvent("test.pref", n: 2))
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM test_effects WHERE function = 'pref'", atLeast: 1) == 1)
        // Both GPU functions run in the end, each with CUDA_VISIBLE_DEVICES=7, one after the other.
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM test_effects WHERE function LIKE 'gpu-%'", atLeast: 2) == 2)
        let rows = try await d.db.query("SELECT function, gpu FROM test_effects ORDER BY function")
        #expect(rows.map { $0.text("function") ?? "" } == ["gpu-a", "gpu-b", "pref"])
        #expect(rows.map { $0.text("gpu") ?? "?" } == ["7", "7", ""])
        let spans = try await d.db.query("""
            SELECT bool_and(a.handled_at <= b.started_at OR b.handled_at <= a.started_at) AS disjoint
            FROM test_effects a, test_effects b WHERE a.function = 'gpu-a' AND b.function = 'gpu-b'
            """)
        #expect(spans.first?.text("disjoint") == "t", "the two GPU handlers never overlapped on the one slot")
        #expect(try await d.waitForLauncher { $0.gpuQueue.isEmpty && $0.freeGPUs == ["7"] })
        await d.shutdown()
    }
}
