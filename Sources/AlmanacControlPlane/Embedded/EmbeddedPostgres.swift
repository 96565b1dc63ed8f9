import AlmanacFunctions
import Foundation
import Logging

/// A private Postgres server in a local data folder, made with Debian's `initdb` and run by `pg_ctl`.
///
/// It listens on 127.0.0.1 only, with trust authentication for the `almanac` role: it is for
/// one machine's development and tests, never for production (point `DATABASE_URL` at a real
/// server there). Postgres refuses to run as root, so when this process is root the server
/// runs as the `postgres` user, which then owns the data folder.
public struct EmbeddedPostgres: Sendable {
    /// The data folder (the cluster).
    public var dataDirectory: String
    /// The TCP port on 127.0.0.1.
    public var port: Int
    /// Where the server writes its log.
    public var logFile: String
    /// The folder of `initdb`, `pg_ctl` and `postgres`.
    public var binDirectory: String
    /// Whether commits are flushed to disk (off for scratch servers).
    public var durable: Bool

    /// The URL of the `almanac` database.
    public var url: String { "postgresql://almanac@127.0.0.1:\(port)/almanac" }
    /// The URL of another database on this server.
    public func url(database: String) -> String { "postgresql://almanac@127.0.0.1:\(port)/\(database)" }

    /// Describes a server; nothing starts until `start()`.
    /// - Throws: `EmbeddedServiceError` when no Postgres binaries are installed.
    /// - Parameter durable: false for scratch servers (tests, benchmarks) that need no
    ///   durability across a crash of the machine: no fsync, no synchronous commit.
    public init(dataDirectory: String, port: Int, logFile: String? = nil, durable: Bool = true) throws {
        self.dataDirectory = dataDirectory
        self.port = port
        self.durable = durable
        self.logFile = logFile ?? "\(dataDirectory).log"
        self.binDirectory = try EmbeddedPostgres.findBinaries()
    }

    /// Finds `pg_ctl`: `ALMANAC_PG_BIN`, the newest `/usr/lib/postgresql/*/bin`, or `PATH`.
    static func findBinaries() throws -> String {
        if let dir = ProcessInfo.processInfo.environment["ALMANAC_PG_BIN"] { return dir }
        let base = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).compactMap(Int.init).sorted()
        for v in versions.reversed() where FileManager.default.isExecutableFile(atPath: "\(base)/\(v)/bin/pg_ctl") {
            return "\(base)/\(v)/bin"
        }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
        where FileManager.default.isExecutableFile(atPath: "\(dir)/pg_ctl") {
            return String(dir)
        }
        throw EmbeddedServiceError("Postgres is not installed: no pg_ctl in /usr/lib/postgresql/*/bin or PATH. Install it with `apt-get install -y postgresql`, or set DATABASE_URL to a running server.")
    }

    static var isRoot: Bool { getuid() == 0 }

    /// Creates the cluster if the folder has none, starts the server if it is not running,
    /// and creates the `almanac` database. Safe to call on a folder from an earlier run.
    public func start(logger: Logger) throws {
        let fm = FileManager.default
        let parent = (dataDirectory as NSString).deletingLastPathComponent
        try fm.createDirectory(atPath: parent, withIntermediateDirectories: true)
        if !fm.fileExists(atPath: "\(dataDirectory)/PG_VERSION") {
            try fm.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
            try prepareOwnership(of: dataDirectory)
            logger.info("creating the embedded Postgres cluster", metadata: ["data": "\(dataDirectory)"])
            try run("initdb", ["-D", dataDirectory, "-U", "almanac", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        }
        try prepareOwnership(of: logFile, isFile: true)
        if try isRunning() { return }
        // A server killed hard leaves its pid file; pg_ctl handles a stale one itself.
        let sync = durable ? "-c fsync=on" : "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        let options = "-p \(port) -c listen_addresses=127.0.0.1 -c unix_socket_directories= \(sync) -c max_connections=200 -c shared_buffers=128MB"
        try run("pg_ctl", ["-D", dataDirectory, "-l", logFile, "-o", options, "-w", "-t", "60", "start"])
        try run("psql", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "almanac", "-d", "postgres", "-tAc",
                         "SELECT 1 FROM pg_database WHERE datname = 'almanac'"], captureInto: { out in
            if out.trimmingCharacters(in: .whitespacesAndNewlines) != "1" {
                try run("createdb", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "almanac", "almanac"])
            }
        })
        logger.info("embedded Postgres is up", metadata: ["port": "\(port)"])
    }

    /// Whether the server of this folder is running.
    public func isRunning() throws -> Bool {
        guard FileManager.default.fileExists(atPath: "\(dataDirectory)/PG_VERSION") else { return false }
        return (try? run("pg_ctl", ["-D", dataDirectory, "status"])) != nil
    }

    /// Restarts the server (`pg_ctl restart`, with the options it was started with); every
    /// open connection is cut.
    /// - Parameter mode: `fast` (roll back open transactions) or `immediate`.
    public func restart(mode: String = "fast") throws {
        _ = try run("pg_ctl", ["-D", dataDirectory, "-m", mode, "-l", logFile, "-w", "-t", "60", "restart"])
    }

    /// Stops the server: `fast` rolls back open transactions and disconnects clients.
    public func stop(mode: String = "fast") {
        _ = try? run("pg_ctl", ["-D", dataDirectory, "-m", mode, "-w", "stop"])
    }

    /// Creates a database (for tests that each want their own).
    public func createDatabase(_ name: String) throws {
        try run("createdb", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "almanac", name])
    }

    private func prepareOwnership(of path: String, isFile: Bool = false) throws {
        guard EmbeddedPostgres.isRoot else { return }
        if isFile, !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        // The server runs as `postgres`; it must own its folder and log, and reach them.
        _ = try EmbeddedPostgres.exec("/bin/chown", ["-R", "postgres:postgres", path])
        if !isFile { _ = try EmbeddedPostgres.exec("/bin/chmod", ["700", path]) }
    }

    @discardableResult
    private func run(_ tool: String, _ args: [String], captureInto: ((String) throws -> Void)? = nil) throws -> String {
        let path = "\(binDirectory)/\(tool)"
        let program = FileManager.default.isExecutableFile(atPath: path) ? path : "/usr/bin/\(tool)"
        let output: String
        if EmbeddedPostgres.isRoot {
            output = try EmbeddedPostgres.exec("/usr/sbin/runuser", ["-u", "postgres", "--", program] + args)
        } else {
            output = try EmbeddedPostgres.exec(program, args)
        }
        try captureInto?(output)
        return output
    }

    /// Runs a program to completion and returns its output.
    /// - Throws: `EmbeddedServiceError` with the program's output when it exits non-zero.
    static func exec(_ program: String, _ args: [String]) throws -> String {
        let result = try Subprocess.run(program, args)
        if result.status != 0 {
            throw EmbeddedServiceError("\((program as NSString).lastPathComponent) \(args.joined(separator: " ")) failed (exit \(result.status)): \(result.output)")
        }
        return result.output
    }

    /// A free TCP port on 127.0.0.1, from the kernel.
    public static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// An embedded service (Postgres, the mock broker) that could not be set up.
public struct EmbeddedServiceError: Error, CustomStringConvertible, Sendable {
    /// What went wrong and what to do.
    public var message: String
    /// Makes an error.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}
