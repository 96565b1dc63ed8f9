import AlmanacFunctions
import Foundation
import Logging

/// Runs `almanac` sub-processes (the broker, the router) and restarts them when they die,
/// with a growing delay, so that one crashing never takes the others with it.
public actor Supervisor {
    struct Child {
        var arguments: [String]
        var environment: [String: String]
        var process: Process?
        var restarts = 0
        var stopping = false
        var startedAt: ContinuousClock.Instant?
        var beforeRestart: (@Sendable () -> Void)?
    }

    private var children: [String: Child] = [:]
    private var order: [String] = []
    private var restartHooks: [String: @Sendable () async -> Void] = [:]
    let logDirectory: String
    let executable: String

    /// Makes a supervisor that runs this same executable with other arguments.
    public init(logDirectory: String, executable: String = CommandLine.arguments[0]) {
        self.logDirectory = logDirectory
        self.executable = URL(fileURLWithPath: executable).resolvingSymlinksInPath().path
    }

    /// Starts a child; its output goes to `<logDirectory>/<name>.log`.
    /// - Parameter beforeRestart: runs before each restart (e.g. removing a stale ready file).
    public func start(name: String, arguments: [String], environment: [String: String], beforeRestart: (@Sendable () -> Void)? = nil) {
        children[name] = Child(arguments: arguments, environment: environment, beforeRestart: beforeRestart)
        if !order.contains(name) { order.append(name) }
        launch(name)
    }

    /// Runs `hook` after the child `name` was restarted.
    public func onRestart(_ name: String, _ hook: @escaping @Sendable () async -> Void) {
        restartHooks[name] = hook
    }

    /// The pid of a running child.
    public func pid(_ name: String) -> Int32? { children[name]?.process?.processIdentifier }

    private func launch(_ name: String) {
        guard var child = children[name] else { return }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = child.arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in child.environment { env[k] = v }
        p.environment = env
        _ = try? p.redirectOutput(toLog: "\(logDirectory)/\(name).log")
        p.terminationHandler = { [weak self] proc in
            let status = proc.terminationStatus
            Task { await self?.ended(name, process: proc, status: status) }
        }
        do { try p.run() } catch {
            FileHandle.standardError.write(Data("cannot start \(name): \(error)\n".utf8))
            return
        }
        child.process = p
        child.startedAt = ContinuousClock.now
        children[name] = child
    }

    private func ended(_ name: String, process: Process, status: Int32) async {
        guard var child = children[name], child.process === process, !child.stopping else { return }
        // A child that ran a minute or more since its last start begins its backoff afresh.
        if let started = child.startedAt, ContinuousClock.now - started > .seconds(60) { child.restarts = 0 }
        child.restarts += 1
        child.process = nil
        children[name] = child
        let delay = min(10.0, 0.2 * pow(2, Double(min(child.restarts, 6))))
        FileHandle.standardOutput.write(Data("supervisor \(name) exited (status \(status)); restarting in \(String(format: "%.1f", delay)) s\n".utf8))
        try? await Task.sleep(for: .milliseconds(Int(delay * 1000)))
        guard let again = children[name], !again.stopping else { return }
        again.beforeRestart?()
        launch(name)
        if let hook = restartHooks[name] { await hook() }
    }

    /// Stops one child: SIGTERM, then SIGKILL after `grace`.
    public func stop(_ name: String, grace: Duration = .seconds(10)) async {
        guard var child = children[name] else { return }
        child.stopping = true
        children[name] = child
        guard let p = child.process, p.isRunning else { return }
        p.terminate()
        let deadline = ContinuousClock.now + grace
        while p.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
    }

    /// Stops every child, last started first.
    public func stopAll() async {
        for name in order.reversed() { await stop(name) }
    }
}
