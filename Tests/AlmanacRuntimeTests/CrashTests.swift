import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Testing

/// A seeded generator, so a failing run can be repeated.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// kill -9 of functions and of the router at random points while events flow: afterwards
/// every event's effect is in Postgres exactly once and none is lost.
@Suite(.serialized) struct CrashTests {
    @Test("kill -9 anywhere loses and duplicates nothing", arguments: [11, 23, 37, 41, 59] as [UInt64])
    func killNineAnywhere(seed: UInt64) async throws {
        var rng = SplitMix64(state: seed)
        // Attempts that die with their process count towards `maxAttempts` (a handler that kills
        // its process must end in the dead letters). Here the kills come from outside, about every
        // quarter second, and a new instance handles the event its predecessor died on first:
        // with 3 attempts, three kills in a row on one event (seen once in many runs) dead-letter
        // it `crashed` by design. Ten attempts keep this test about losses, not that policy
        // (`FaultTests` covers the policy).
        let d = try await TestDeployment(functions: [
            TestFunction(name: "crash-a", subscribe: "test.crash", emit: "test.crash2", idle: "2s", maxAttempts: 10),
            TestFunction(name: "crash-b", subscribe: "test.crash2", idle: "2s", maxAttempts: 10),
        ], partitions: 2)
        let serve = ServeProcess(deployment: d)
        try serve.start()
        defer { serve.kill(); killInstances(of: d) }

        // Events flow for the whole chaos window, so kills land mid-flow: about 300 in ten
        // seconds, more while the chaos goes on (at most 1000).
        let publishing = TestFlag()
        let publisher = Task {
            var n = 0
            while n < 1000 && (n < 300 || !publishing.isSet) {
                try await d.publish(testEvent("test.crash", n: n, subject: "s\(n % 7)"))
                n += 1
                try await Task.sleep(for: .milliseconds(30))
            }
            return n
        }
        // Chaos for at least ten seconds: each round kills a function instance or the router. On
        // a loaded machine instances start slowly and a round may find none to kill, so the
        // chaos (and the flow of events that keeps instances running) goes on until it has
        // killed the router twice and functions five times (the cap, 180 s, is a safety only).
        var kills = (router: 0, functions: 0)
        let chaosEnd = ContinuousClock.now + .seconds(10), hardEnd = ContinuousClock.now + .seconds(180)
        func enough() -> Bool { kills.router >= 2 && kills.functions >= 5 }
        while ContinuousClock.now < chaosEnd || (!enough() && ContinuousClock.now < hardEnd) {
            try await Task.sleep(for: .milliseconds(Int.random(in: 100...400, using: &rng)))
            if Int.random(in: 0..<4, using: &rng) == 0 {
                serve.kill()
                kills.router += 1
                try await Task.sleep(for: .milliseconds(Int.random(in: 50...400, using: &rng)))
                try serve.start()
            } else {
                let pids = instancePIDs(of: d)
                if let pid = pids.randomElement(using: &rng) {
                    Foundation.kill(pid, SIGKILL)
                    kills.functions += 1
                }
            }
        }
        publishing.set()
        let total = try await publisher.value
        if !serve.isRunning { try serve.start() }

        // However slow the machine, as long as effects keep arriving; a lost event leaves the count short for good.
        let done = try await d.waitForProgress("SELECT count(DISTINCT n) AS n FROM test_effects WHERE function = 'crash-b'", atLeast: total)
        #expect(done == total, "seed \(seed): every event reached the end of the chain (kills: \(kills))")
        for f in ["crash-a", "crash-b"] {
            let rows = try await d.db.query("""
                SELECT count(*) AS n, count(DISTINCT event_id) AS events, count(DISTINCT n) AS values
                FROM test_effects WHERE function = $1
                """, [f])
            let n = try rows[0].decode("n", as: Int.self)
            #expect(n == total, "seed \(seed): \(f) has \(n) effects for \(total) events (kills: \(kills))")
            #expect(try rows[0].decode("values", as: Int.self) == total)
        }
        #expect(kills.router >= 2 && kills.functions >= 5, "the chaos really happened: \(kills)")
        // Everything emitted was relayed in the end.
        #expect(try await d.waitForProgress("SELECT (count(*) FILTER (WHERE sent_at IS NOT NULL))::bigint AS n FROM outbox",
                                            atLeast: total) == total)
        await d.shutdown()
    }
}

/// `almanac serve` (router, launcher, ingress) as a child process that a test can kill -9.
final class ServeProcess: @unchecked Sendable {
    let deployment: TestDeployment
    var process: Process?

    init(deployment: TestDeployment) { self.deployment = deployment }

    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "\(TestPaths.binaries)/almanac")
        p.arguments = ["serve", "--http-port", "0", "--functions", "\(deployment.directory)/functions", "--log-dir", "\(deployment.directory)/logs"]
        var env = ProcessInfo.processInfo.environment
        env["DATABASE_URL"] = deployment.databaseURL
        env["KAFKA_BROKERS"] = deployment.cluster.bootstrapServers
        env["ALMANAC_ROOT"] = deployment.directory
        env["ALMANAC_BIN"] = TestPaths.binaries
        env["ALMANAC_EVENTS_DIR"] = "\(deployment.directory)/events"
        env["ALMANAC_GPUS"] = "none"
        p.environment = env
        let log = "\(deployment.directory)/logs/serve.log"
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = FileHandle(forWritingAtPath: log)
        handle?.seekToEndOfFile()
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        process = p
    }

    var isRunning: Bool { process?.isRunning ?? false }

    func kill() {
        guard let p = process, p.isRunning else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }
}

/// Function instances started for a deployment (found by the manifest path in their environment).
func instancePIDs(of d: TestDeployment) -> [Int32] {
    let procs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return procs.compactMap(Int32.init).filter { pid in
        guard let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
        return env.split(separator: 0).contains { String(decoding: $0, as: UTF8.self).hasPrefix("ALMANAC_FUNCTION_MANIFEST=\(d.directory)/") }
    }
}

func killInstances(of d: TestDeployment) {
    for pid in instancePIDs(of: d) { kill(pid, SIGKILL) }
}
