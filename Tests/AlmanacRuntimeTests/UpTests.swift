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
        let port: Int

        init(_ d: TestDeployment, httpPort: Int = EmbeddedPostgres.freePort()) throws {
            deployment = d
            port = httpPort
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
        // The ingress port is held by a listener that never answers: serve cannot bind it and
        // `up` keeps waiting for /healthz, so the signal below surely comes during start-up
        // (without it, a slow test could see the broker only after `up` was ready).
        let silent = try SilentListener()
        defer { silent.close() }
        let up = try UpProcess(d, httpPort: silent.port)
        defer { if up.process.isRunning { kill(up.process.processIdentifier, SIGKILL) }; for p in up.children() { kill(p, SIGKILL) } }
        // Once the broker and serve were started, ask `up` to stop.
        #expect(try await up.wait { up.brokerPID() != nil && up.children().count >= 2 })
        kill(up.process.processIdentifier, SIGTERM)
        #expect(try await up.wait(.seconds(60)) { !up.process.isRunning }, "up exited: \(up.printed)")
        #expect(try await up.wait(.seconds(30)) { up.children().isEmpty }, "no orphans: \(up.children())")
        #expect(!FileManager.default.fileExists(atPath: up.endpointsFile), "a stopped start-up announces no endpoints")
        await d.shutdown()
    }
}

/// A TCP port that is listened on but never answered: connections wait in the backlog and
/// requests time out.
final class SilentListener: @unchecked Sendable {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 16) == 0 else { Glibc.close(fd); throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { Glibc.close(fd) }
}
