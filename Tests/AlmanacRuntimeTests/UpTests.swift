import AlmanacCore
import AlmanacHTTP
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Testing

/// `almanac up` as a user runs it: its endpoints file, a broker killed -9 under it, and
/// signals at any moment.
@Suite(.serialized) struct UpTests {
    /// `almanac up` over a test deployment's database and functions, with the mock broker in its own process.
    final class UpProcess: @unchecked Sendable {
        let deployment: TestDeployment
        let process = Process()
        let state: String
        let output: String
        let port = EmbeddedPostgres.freePort()

        init(_ d: TestDeployment) throws {
            deployment = d
            state = "\(d.directory)/.almanac"
            output = "\(d.directory)/up.out"
            // `up` finds the migrations under its root (they are applied already: a no-op).
            try? FileManager.default.createSymbolicLink(atPath: "\(d.directory)/infra", withDestinationPath: "\(TestPaths.root)/infra")
            process.executableURL = URL(fileURLWithPath: "\(TestPaths.binaries)/almanac")
            process.arguments = ["up", "--state", state, "--http-port", "\(port)", "--functions", "\(d.directory)/functions"]
            var env = ProcessInfo.processInfo.environment
            env["DATABASE_URL"] = d.databaseURL
            env.removeValue(forKey: "KAFKA_BROKERS")
            env["ALMANAC_ROOT"] = d.directory
            env["ALMANAC_BIN"] = TestPaths.binaries
            env["ALMANAC_GPUS"] = "none"
            process.environment = env
            process.currentDirectoryURL = URL(fileURLWithPath: d.directory)
            FileManager.default.createFile(atPath: output, contents: nil)
            let handle = FileHandle(forWritingAtPath: output)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
        }

        var printed: String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
        var endpointsFile: String { "\(state)/endpoints.env" }

        /// Waits for a state, up to `timeout`.
        func wait(_ timeout: Duration = .seconds(90), _ condition: () -> Bool) async throws -> Bool {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if condition() { return true }
                try await Task.sleep(for: .milliseconds(20))
            }
            return condition()
        }

        /// Processes `up` started (they carry its pid in their environment), and the function instances.
        func children() -> [Int32] {
            let marker = "ALMANAC_SUPERVISOR_PID=\(process.processIdentifier)"
            let procs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            let started = procs.compactMap(Int32.init).filter { pid in
                guard let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
                return env.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == marker }
            }
            return started + instancePIDs(of: deployment)
        }

        /// The mock broker's process.
        func brokerPID() -> Int32? {
            let procs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return procs.compactMap(Int32.init).first { pid in
                guard let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
                let args = cmd.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                return args.count > 2 && args[1] == "broker" && args.contains("\(state)/broker.ready")
            }
        }

        func stop() async throws -> Int32 {
            if process.isRunning { kill(process.processIdentifier, SIGTERM) }
            _ = try await wait(.seconds(90)) { !process.isRunning }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    /// POSTs an event until it is accepted (a client retries while services restart).
    static func post(_ e: CloudEvent, to base: String, token: String) async throws -> Int {
        var tries = 0
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            tries += 1
            if let r = try? await HTTPClient().send(HTTPClientRequest(method: "POST", url: "\(base)/events",
                                                                     headers: [("Authorization", "Bearer \(token)"), ("Content-Type", cloudEventsJSONType)],
                                                                     body: e.structuredJSON().serializedData(), timeout: 10)),
               r.status == 202 { return tries }
            try await Task.sleep(for: .milliseconds(200))
        }
        return -1
    }

    @Test func endpointsAppearWhenTheyAnswerAndABrokerKilledMidFlowLosesNothing() async throws {
        let d = try await TestDeployment(functions: [TestFunction(name: "steady", subscribe: "test.up", idle: "30s")])
        let up = try UpProcess(d)
        defer { if up.process.isRunning { kill(up.process.processIdentifier, SIGKILL) }; for p in up.children() { kill(p, SIGKILL) } }
        #expect(try await up.wait { FileManager.default.fileExists(atPath: up.endpointsFile) }, "endpoints.env appeared: \(up.printed)")
        // The moment the file exists, everything in it answers.
        let endpoints = Endpoints.parse(try String(contentsOfFile: up.endpointsFile, encoding: .utf8))
        let base = try #require(endpoints["ALMANAC_HTTP"]), token = try #require(endpoints["ALMANAC_TOKEN"])
        #expect(try await HTTPClient().send(HTTPClientRequest(method: "GET", url: "\(base)/healthz", timeout: 2)).status == 200)
        _ = try await PostgresConnection.connect(url: try #require(endpoints["DATABASE_URL"])).close()

        let total = 24
        var broker = try #require(up.brokerPID())
        for n in 0..<total {
            if n == 8 {
                // kill -9 of the broker mid-flow: `up` restarts it (empty) and the router with it.
                #expect(kill(broker, SIGKILL) == 0)
            }
            if n == 16, let again = up.brokerPID(), again != broker {
                broker = again
                #expect(kill(broker, SIGKILL) == 0, "and once more")
            }
            #expect(try await Self.post(testEvent("test.up", n: n, subject: "s\(n % 3)"), to: base, token: token) > 0)
        }
        #expect(try await d.waitForCount("SELECT count(DISTINCT n) AS n FROM test_effects", atLeast: total, timeout: .seconds(120)) == total,
                "every accepted event was handled: \(up.printed)")
        #expect(try await d.count("SELECT count(*) AS n FROM test_effects") == total, "none twice")
        #expect(up.printed.contains("the mock broker restarted"))

        // SIGTERM to `up`: everything it started stops with it.
        #expect(try await up.stop() == 0, "\(up.printed)")
        #expect(try await up.wait(.seconds(30)) { up.children().isEmpty }, "nothing outlived up: \(up.children())")
        await d.shutdown()
    }

    @Test func aSignalDuringStartUpStopsEverythingStartedSoFar() async throws {
        let d = try await TestDeployment(functions: [TestFunction(name: "steady", subscribe: "test.up")])
        let up = try UpProcess(d)
        defer { if up.process.isRunning { kill(up.process.processIdentifier, SIGKILL) }; for p in up.children() { kill(p, SIGKILL) } }
        // Once the broker is running (and before serve answers), ask `up` to stop.
        #expect(try await up.wait { up.brokerPID() != nil })
        kill(up.process.processIdentifier, SIGTERM)
        #expect(try await up.wait(.seconds(60)) { !up.process.isRunning }, "up exited: \(up.printed)")
        #expect(try await up.wait(.seconds(30)) { up.children().isEmpty }, "no orphans: \(up.children())")
        #expect(!FileManager.default.fileExists(atPath: up.endpointsFile), "a stopped start-up announces no endpoints")
        await d.shutdown()
    }
}
