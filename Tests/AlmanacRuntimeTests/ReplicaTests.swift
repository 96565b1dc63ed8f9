import AlmanacCore
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Testing

/// Function instances as Kubernetes runs them: replicas of a Deployment (KEDA scales it; no
/// launcher), started with the environment `almanac deploy kubernetes` renders, which never
/// exit when idle and share the input topic's partitions as one consumer group.
@Suite(.serialized) struct ReplicaTests {
    /// Starts one replica of `function` the way a pod does.
    func replica(_ d: TestDeployment, _ function: FunctionManifest, _ n: Int) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "\(TestPaths.binaries)/almanac-testfn")
        var env = ProcessInfo.processInfo.environment
        env["ALMANAC_FUNCTION_MANIFEST"] = "\(d.directory)/functions/\(function.name)/function.yaml"
        env["DATABASE_URL"] = d.databaseURL
        env["KAFKA_BROKERS"] = d.cluster.bootstrapServers
        env["ALMANAC_ROOT"] = d.directory
        env["ALMANAC_EVENTS_DIR"] = "\(d.directory)/events"
        env["ALMANAC_IDLE_TIMEOUT"] = "never"
        env["ALMANAC_INSTANCE_ID"] = "replica-\(n)"
        for (k, v) in function.environment { env[k] = v }
        p.environment = env
        let log = FileHandle(forWritingAtPath: { let path = "\(d.directory)/logs/replica-\(n).log"
                                                 _ = FileManager.default.createFile(atPath: path, contents: nil); return path }())
        p.standardOutput = log
        p.standardError = log
        try p.run()
        return p
    }

    @Test func threeReplicasShareTheWorkAndOneKilledMidFlowLosesAndDoublesNothing() async throws {
        let d = try await TestDeployment(functions: [
            TestFunction(name: "shared", subscribe: "test.shared", mode: "sleep", concurrency: 3, idle: "1s", sleepMs: 100),
        ], partitions: 6)
        d.parts = [.router]  // the router alone: nothing but the replicas below consumes
        try await d.startControlPlane()
        let manifest = try #require(d.manifests.first)
        var replicas = try (0..<3).map { try replica(d, manifest, $0) }
        defer { for p in replicas where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        let total = 120
        for n in 0..<total { try await d.publish(testEvent("test.shared", n: n, subject: "s\(n % 12)")) }
        // Work is under way on more than one replica; then one dies mid-flow.
        let before = try await d.waitForCount("SELECT count(DISTINCT instance) AS n FROM test_effects", atLeast: 2, timeout: .seconds(90))
        #expect(before >= 2, "the replicas share the partitions")
        let handled = try await d.count("SELECT count(*) AS n FROM test_effects")
        #expect(handled < total, "the kill came mid-flow")
        kill(replicas[0].processIdentifier, SIGKILL)
        replicas[0].waitUntilExit()
        // The group hands the dead replica's partitions to the others: every event once.
        #expect(try await d.waitForProgress("SELECT count(DISTINCT n) AS n FROM test_effects", atLeast: total) == total)
        #expect(try await d.count("SELECT count(*) AS n FROM test_effects") == total, "each event handled exactly once")
        #expect(try await d.count("SELECT count(*) AS n FROM dead_letters") == 0)
        // Idle replicas stay up (KEDA, not the instance, scales to zero) until told to stop.
        try await Task.sleep(for: .seconds(2))
        #expect(replicas[1].isRunning && replicas[2].isRunning, "a replica exited on its own while idle")
        for p in replicas.dropFirst() {
            kill(p.processIdentifier, SIGTERM)
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
        }
        replicas = []
        await d.shutdown()
    }
}
