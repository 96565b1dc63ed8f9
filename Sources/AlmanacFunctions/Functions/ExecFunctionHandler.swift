import AlmanacCore
import Foundation
import Logging

/// Runs a function written in any language under the SDK: the program reads one JSON
/// line per event on stdin and answers on stdout.
///
/// Request: `{"event": <structured CloudEvent>, "attempt": 1, "deadline_ms": 60000}`.
/// While working it may write `{"log": "text", "level": "info"}` or
/// `{"progress": {…}}` lines (the latter are `context.progress`); it ends each event with exactly one of
/// `{"ok": true, "emit": [{"type": "…", "subject": "…", "data": {…}}], "write": [{"insert": "table", "rows": [{…}]}]}` or
/// `{"ok": false, "error": "what went wrong", "retriable": true}`. The `write` entries
/// (`ExecWrite`: inserts and deletes) are applied in the SDK's commit transaction with the
/// emitted events and the event's processed mark, exactly as a Swift handler's `context.write`.
/// An answer line may be at most `ExecChild.maxLineBytes` long.
/// Anything it writes to stderr goes to the instance's log. The program stays up across
/// events; past the deadline it is killed and started again for the next one.
public final class ExecFunctionHandler: FunctionHandler, @unchecked Sendable {
    // `child` is guarded by `lock`; one event is handled at a time.
    private let lock = NSLock()
    private var child: ExecChild?
    let command: [String]
    let directory: String
    let environment: [String: String]

    /// Makes an adapter for a command run in `directory`.
    public init(command: [String], directory: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.command = command
        self.directory = directory
        self.environment = environment
    }

    /// Sends the event to the program and turns its answer into emitted events or an error.
    public func handle(_ event: CloudEvent, context: FunctionContext) async throws {
        let child = try currentChild(logger: context.logger)
        let deadlineMs = max(0, Int((context.deadline - ContinuousClock.now).components.seconds * 1000))
        let request: JSONValue = ["event": event.structuredJSON(), "attempt": .number(Double(context.attempt)),
                                  "deadline_ms": .number(Double(deadlineMs))]
        let answer: JSONValue
        do {
            answer = try await withTaskCancellationHandler {
                try child.send(request.serialized())
                while true {
                    guard let line = await child.nextLine() else {
                        throw FunctionError("\(command.joined(separator: " ")) exited (status \(child.exitStatus.map(String.init) ?? "?")) before answering")
                    }
                    guard let json = try? JSONValue(parsing: line), case .object(let o) = json else {
                        context.logger.info("\(line)", metadata: ["stream": "stdout"])
                        continue
                    }
                    if let text = o["log"]?.stringValue {
                        let level = o["level"]?.stringValue.flatMap(Logger.Level.init(rawValue:)) ?? .info
                        context.logger.log(level: level, "\(text)")
                        continue
                    }
                    if let progress = o["progress"] {
                        context.progress(progress)
                        continue
                    }
                    if o["ok"] != nil { return json }
                    context.logger.info("\(line)", metadata: ["stream": "stdout"])
                }
            } onCancel: {
                child.kill()
            }
        } catch {
            dropChild(child)
            throw error
        }
        if answer["ok"]?.boolValue == true {
            let writes = try (answer["write"]?.arrayValue ?? []).enumerated().map { try ExecWrite($0.element, index: $0.offset, tenant: event.tenant) }
            for (i, w) in writes.enumerated() {
                context.write("answer write[\(i)] \(w.table)") { tx in try await w.apply(in: tx) }
            }
            for (i, e) in (answer["emit"]?.arrayValue ?? []).enumerated() {
                guard let type = e["type"]?.stringValue, !type.isEmpty else {
                    throw FunctionError("answer emit[\(i)] has no \"type\"", retriable: false)
                }
                context.emit(type: type, subject: e["subject"]?.stringValue, json: e["data"] ?? .null)
            }
            return
        }
        let message = answer["error"]?.stringValue ?? "the program answered ok=false without an error message"
        throw FunctionError(message, retriable: answer["retriable"]?.boolValue ?? true)
    }

    private func currentChild(logger: Logger) throws -> ExecChild {
        lock.lock(); defer { lock.unlock() }
        if let child, child.isRunning { return child }
        let started = try ExecChild(command: command, directory: directory, environment: environment, logger: logger)
        child = started
        return started
    }

    private func dropChild(_ c: ExecChild) {
        lock.lock(); defer { lock.unlock() }
        c.kill()
        if child === c { child = nil }
    }
}

/// A running program with line-oriented stdin/stdout.
final class ExecChild: @unchecked Sendable {
    // `lines`, `waiters` and `finished` are guarded by `lock`; the reader thread appends.
    private let process = Process()
    private let stdin: FileHandle
    private let lock = NSLock()
    private var lines: [String] = []
    private var waiters: [CheckedContinuation<String?, Never>] = []
    private var finished = false

    init(command: [String], directory: String, environment: [String: String], logger: Logger) throws {
        guard let program = command.first else { throw FunctionError("run.command is empty", retriable: false) }
        let inPipe = Pipe(), outPipe = Pipe(), errPipe = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [program] + command.dropFirst()
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = environment
        process.standardInput = inPipe
        process.standardOutput = outPipe
        process.standardError = errPipe
        do { try process.run() } catch {
            throw FunctionError("cannot start \(command.joined(separator: " ")) in \(directory): \(error)", retriable: false)
        }
        stdin = inPipe.fileHandleForWriting
        let out = outPipe.fileHandleForReading
        let err = errPipe.fileHandleForReading
        Thread.detachNewThread { [self] in
            // Lines are cut where a newline is; only the bytes just read are searched, so a
            // long answer line (a trained model) costs linear time.
            var buffer = Data()
            while true {
                let chunk = out.availableData
                if chunk.isEmpty { break }
                var searchFrom = buffer.count
                buffer.append(chunk)
                while let nl = buffer[(buffer.startIndex + searchFrom)...].firstIndex(of: 0x0A) {
                    deliver(String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self))
                    buffer.removeSubrange(buffer.startIndex...nl)
                    searchFrom = 0
                }
                if buffer.count > Self.maxLineBytes {
                    // A line past the bound is refused as a whole: the program is stopped.
                    deliver(#"{"ok": false, "error": "the program wrote a line over \#(Self.maxLineBytes >> 20) MiB to stdout; it was stopped", "retriable": false}"#)
                    kill()
                    break
                }
            }
            finish()
        }
        Thread.detachNewThread {
            while true {
                let chunk = err.availableData
                if chunk.isEmpty { break }
                for line in String(decoding: chunk, as: UTF8.self).split(separator: "\n") {
                    logger.info("\(line)", metadata: ["stream": "stderr"])
                }
            }
        }
    }

    /// The longest line read from the program (an answer carrying a trained model included).
    static let maxLineBytes = 512 << 20

    var isRunning: Bool { process.isRunning }
    var exitStatus: Int32? { process.isRunning ? nil : process.terminationStatus }

    func send(_ line: String) throws {
        do { try stdin.write(contentsOf: Data((line + "\n").utf8)) } catch {
            throw FunctionError("cannot write to the program's stdin: \(error)")
        }
    }

    func nextLine() async -> String? {
        await withCheckedContinuation { cont in
            lock.lock()
            if !lines.isEmpty { let l = lines.removeFirst(); lock.unlock(); cont.resume(returning: l); return }
            if finished { lock.unlock(); cont.resume(returning: nil); return }
            waiters.append(cont)
            lock.unlock()
        }
    }

    private func deliver(_ line: String) {
        lock.lock()
        if !waiters.isEmpty { let w = waiters.removeFirst(); lock.unlock(); w.resume(returning: line); return }
        lines.append(line)
        lock.unlock()
    }

    private func finish() {
        lock.lock()
        finished = true
        let ws = waiters
        waiters = []
        lock.unlock()
        ws.forEach { $0.resume(returning: nil) }
    }

    func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }
}
