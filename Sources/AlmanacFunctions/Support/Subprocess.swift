import Foundation

/// Runs a short-lived program to completion with `posix_spawn` and `waitpid`.
///
/// Foundation's `Process.waitUntilExit` can hang on Linux when called from a cooperative
/// thread, so the tools `up` and the test fixtures call (initdb, pg_ctl, createdb,
/// nvidia-smi) go through this instead. Standard error is merged into standard output.
public enum Subprocess {
    /// What a program printed and how it ended.
    public struct Result: Sendable {
        /// The exit status (128 + signal when killed).
        public var status: Int32
        /// Standard output and standard error, interleaved.
        public var output: String
    }

    /// Runs `program` (an absolute path, or a name looked up in PATH) and waits for it.
    public static func run(_ program: String, _ arguments: [String], environment: [String: String]? = nil) throws -> Result {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SubprocessError("pipe() failed: errno \(errno)") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addclose(&actions, fds[1])
        let argv: [UnsafeMutablePointer<CChar>?] = ([program] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envList = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let envp: [UnsafeMutablePointer<CChar>?] = envList.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = program.contains("/") ? posix_spawn(&pid, program, &actions, nil, argv, envp)
                                       : posix_spawnp(&pid, program, &actions, nil, argv, envp)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw SubprocessError("cannot run \(program): \(String(cString: strerror(rc)))")
        }
        var output = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fds[0], &buffer, buffer.count)
            if n > 0 { output.append(buffer, count: n); continue }
            if n < 0 && errno == EINTR { continue }
            break
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = (status & 0x7f) == 0
        let code = exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: code, output: String(decoding: output, as: UTF8.self))
    }
}

extension Process {
    /// Sends the process's standard output and error to the end of a log file (created if
    /// missing) and its standard input to /dev/null.
    /// - Returns: the log's handle, for the caller to close when the process ends.
    @discardableResult
    public func redirectOutput(toLog path: String) throws -> FileHandle {
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        log.seekToEndOfFile()
        standardOutput = log
        standardError = log
        standardInput = FileHandle.nullDevice
        return log
    }
}

/// A program could not be started or read.
public struct SubprocessError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public var message: String
    /// Makes an error.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}
