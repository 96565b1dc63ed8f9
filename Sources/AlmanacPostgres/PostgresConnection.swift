import CLibPQ
import Foundation
import Logging

/// One connection to Postgres through libpq.
///
/// Values only ever travel as bound parameters (`$1`, `$2`, …): there is no API that
/// splices a value into SQL text. Statements run on a private serial queue, off Swift's
/// cooperative pool, because libpq's calls block.
///
/// - Important: a connection runs one statement at a time. Statements issued from several
///   tasks are serialised; a `transaction` holds the connection for its whole body, so keep
///   transactions short and never compute inside one.
public final class PostgresConnection: @unchecked Sendable {
    // libpq's PGconn is not thread-safe: every use of `handle` happens on `queue`,
    // and `lock` keeps transactions from interleaving with other statements.
    private let handle: OpaquePointer
    private let queue: DispatchQueue
    private let lock = AsyncLock()
    private let logger: Logger
    private let resetCount = Counter()
    /// The URL this connection was opened with, without its password.
    public let redactedURL: String
    private var closed = false
    /// Statements prepared in this session, by their text (`query(prepared:)`); used on `queue` only.
    private var preparedNames: [String: String] = [:]
    /// Numbers the names of prepared statements (never reused within a session).
    private var preparedSerial = 0
    /// The most statements one session keeps prepared.
    static let maxPrepared = 64

    private init(handle: OpaquePointer, label: String, logger: Logger) {
        self.handle = handle
        self.queue = DispatchQueue(label: "almanac.postgres.\(label)")
        self.logger = logger
        self.redactedURL = label
    }

    deinit {
        if !closed { PQfinish(handle) }
    }

    /// Opens a connection.
    /// - Parameters:
    ///   - url: a libpq connection URI, `postgresql://user:password@host:port/db?sslmode=…`.
    ///   - applicationName: shown in `pg_stat_activity`.
    /// - Throws: `PostgresError` with code `.connectionFailed`; the message never includes the password.
    public static func connect(url: String, applicationName: String = "almanac", logger: Logger = Logger(label: "almanac.postgres")) async throws -> PostgresConnection {
        let redacted = PostgresConnection.redact(url)
        return try await withCheckedThrowingContinuation { cont in
            DispatchQueue.global().async {
                let keys = ["dbname", "application_name", "connect_timeout"]
                // A Postgres on a busy machine can take seconds to start a session: 30 s before giving up.
                let values = [url, applicationName, "30"]
                let conn = PostgresConnection.connectExpanding(keys: keys, values: values)
                guard let conn else {
                    cont.resume(throwing: PostgresError(.connectionFailed, "cannot allocate a libpq connection", query: nil))
                    return
                }
                if PQstatus(conn) != CONNECTION_OK {
                    let message = String(cString: PQerrorMessage(conn)).trimmingCharacters(in: .whitespacesAndNewlines)
                    PQfinish(conn)
                    cont.resume(throwing: PostgresError(.connectionFailed,
                                                        "cannot connect to \(redacted): \(message). Check DATABASE_URL, or run `almanac up` for the embedded default.",
                                                        query: nil))
                    return
                }
                let c = PostgresConnection(handle: conn, label: redacted, logger: logger)
                // Sessions speak UTC so timestamps decode the same everywhere.
                let r = PQexec(conn, "SET TIME ZONE 'UTC'")
                PQclear(r)
                cont.resume(returning: c)
            }
        }
    }

    private static func connectExpanding(keys: [String], values: [String]) -> OpaquePointer? {
        let cKeys = keys.map { strdup($0) } + [nil]
        let cValues = values.map { strdup($0) } + [nil]
        defer {
            cKeys.forEach { free($0) }
            cValues.forEach { free($0) }
        }
        return cKeys.withUnsafeBufferPointer { kp in
            cValues.withUnsafeBufferPointer { vp in
                kp.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: kp.count) { k in
                    vp.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: vp.count) { v in
                        PQconnectdbParams(k, v, 1)
                    }
                }
            }
        }
    }

    /// A URL with its password replaced by `***`, for logs and errors.
    public static func redact(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://"), let at = url.range(of: "@", range: schemeEnd.upperBound..<url.endIndex) else {
            return url
        }
        let userInfo = url[schemeEnd.upperBound..<at.lowerBound]
        guard let colon = userInfo.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at.lowerBound...])
    }

    /// Closes the connection; later calls fail.
    public func close() async {
        await lock.withLock {
            await self.onQueue {
                if !self.closed {
                    PQfinish(self.handle)
                    self.closed = true
                }
            }
        }
    }

    /// Runs a statement with bound parameters and returns its rows.
    /// - Parameters:
    ///   - sql: the statement, with `$1…$n` placeholders.
    ///   - parameters: one value per placeholder; `nil` is SQL NULL.
    public func query(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> PostgresRows {
        try await lock.withLock { try await self.run(sql, parameters) }
    }

    /// Runs a statement as `query` does, prepared once per session (parsed and planned once,
    /// then only executed): for the few hot statements a server answers again and again,
    /// like the forecast lookup. Past `maxPrepared` statements it runs unprepared. After a
    /// reconnect, or when the server lost the statement, it is prepared again.
    public func query(prepared sql: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> PostgresRows {
        let encoded: [String?] = parameters.map { $0?.postgresText }
        return try await lock.withLock {
            try await self.onQueue {
                try self.ensureConnected()
                do { return try self.runPrepared(sql, encoded) } catch let e as PostgresError {
                    // 26000: the statement is gone (DISCARD); 0A000: its plan's result type changed (DDL).
                    guard case .server(let state) = e.code, state == "26000" || state == "0A000" else { throw e }
                    self.preparedNames[sql] = nil
                    return try self.runPrepared(sql, encoded)
                }
            }
        }
    }

    /// Prepares `sql` if this session has not, and executes it. Call on `queue`.
    private func runPrepared(_ sql: String, _ values: [String?]) throws -> PostgresRows {
        var name = preparedNames[sql]
        if name == nil, preparedNames.count < Self.maxPrepared {
            preparedSerial += 1
            let fresh = "almanac_\(preparedSerial)"
            let made = PQprepare(handle, fresh, sql, Int32(values.count), nil)
            defer { PQclear(made) }
            try check(made, sql: sql)
            preparedNames[sql] = fresh
            name = fresh
        }
        let result = name.map { PostgresConnection.execPrepared(handle, $0, values) } ?? PostgresConnection.execParams(handle, sql, values)
        defer { PQclear(result) }
        try check(result, sql: sql)
        return PostgresRows(result: result)
    }

    /// Runs a statement and returns the number of rows it affected.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> Int {
        try await query(sql, parameters).affectedRows
    }

    /// Runs `body` inside `BEGIN … COMMIT`; any error rolls back and is rethrown.
    /// - Important: `body` must use the transaction it is given, not the connection.
    public func transaction<T: Sendable>(
        isolation: PostgresTransaction.Isolation = .readCommitted,
        _ body: (PostgresTransaction) async throws -> T
    ) async throws -> T {
        try await lock.withLock {
            _ = try await self.run(isolation.beginStatement, [])
            let tx = PostgresTransaction(connection: self)
            do {
                let result = try await body(tx)
                _ = try await self.run("COMMIT", [])
                return result
            } catch {
                _ = try? await self.run("ROLLBACK", [])
                throw error
            }
        }
    }

    /// Runs a script of several statements with the simple query protocol.
    /// - Important: for migrations and other fixed SQL text only: it takes no parameters,
    ///   so it must never be given text built from values.
    public func runScript(_ sql: String) async throws {
        try await lock.withLock { try await self.runScriptLocked(sql) }
    }

    func runScriptLocked(_ sql: String) async throws {
        try await onQueue {
            try self.ensureConnected()
            let result = PQexec(self.handle, sql)
            defer { PQclear(result) }
            try self.check(result, sql: sql)
        }
    }

    /// Streams rows into a table with `COPY … FROM STDIN`.
    /// - Parameters:
    ///   - sql: the COPY statement, e.g. `COPY staging (a, b) FROM STDIN WITH (FORMAT csv)`.
    ///   - body: writes the data through the writer; the copy ends when it returns.
    /// - Returns: the number of rows copied.
    /// - Throws: `PostgresError` from the server (a bad row fails the whole copy, which changes nothing).
    @discardableResult
    public func copyIn(_ sql: String, _ body: (PostgresCopyWriter) async throws -> Void) async throws -> Int {
        try await lock.withLock { try await self.copyInLocked(sql, body) }
    }

    func copyInLocked(_ sql: String, _ body: (PostgresCopyWriter) async throws -> Void) async throws -> Int {
        try await onQueue {
            try self.ensureConnected()
            let result = PQexec(self.handle, sql)
            defer { PQclear(result) }
            guard PQresultStatus(result) == PGRES_COPY_IN else {
                try self.check(result, sql: sql)
                throw PostgresError(.protocolViolation, "statement did not start COPY FROM STDIN", query: sql)
            }
        }
        let writer = PostgresCopyWriter(connection: self)
        var caught: Error?
        do { try await body(writer); try await writer.flush() } catch { caught = error }
        let failure = caught.map { SendableError($0) }
        return try await onQueue {
            let message = failure.map { "\($0.error)" }
            let end = message.map { PQputCopyEnd(self.handle, $0) } ?? PQputCopyEnd(self.handle, nil)
            if end != 1 { throw self.connectionError(sql: sql) }
            var rows = 0
            var serverError: Error?
            while let result = PQgetResult(self.handle) {
                defer { PQclear(result) }
                do {
                    try self.check(result, sql: sql)
                    rows = Int(String(cString: PQcmdTuples(result))) ?? rows
                } catch { serverError = serverError ?? error }
            }
            if let failure { throw failure.error }
            if let serverError { throw serverError }
            return rows
        }
    }

    func putCopyData(_ data: Data) async throws {
        try await onQueue {
            let ok = data.withUnsafeBytes { raw in
                PQputCopyData(self.handle, raw.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(raw.count))
            }
            if ok != 1 { throw self.connectionError(sql: "COPY") }
        }
    }

    // MARK: Running statements (callers hold `lock`)

    func run(_ sql: String, _ parameters: [(any PostgresEncodable)?]) async throws -> PostgresRows {
        let encoded: [String?] = parameters.map { $0?.postgresText }
        return try await onQueue {
            try self.ensureConnected()
            let result = PostgresConnection.execParams(self.handle, sql, encoded)
            defer { PQclear(result) }
            try self.check(result, sql: sql)
            return PostgresRows(result: result)
        }
    }

    static func execParams(_ conn: OpaquePointer, _ sql: String, _ values: [String?]) -> OpaquePointer? {
        withCStrings(values) { p in PQexecParams(conn, sql, Int32(values.count), nil, p, nil, nil, 0) }
    }

    static func execPrepared(_ conn: OpaquePointer, _ name: String, _ values: [String?]) -> OpaquePointer? {
        withCStrings(values) { p in PQexecPrepared(conn, name, Int32(values.count), p, nil, nil, 0) }
    }

    /// Calls `body` with the values as C strings (NULL for nil; no array at all when empty).
    static func withCStrings<T>(_ values: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> T) -> T {
        let cValues: [UnsafeMutablePointer<CChar>?] = values.map { $0.map { strdup($0) } ?? nil }
        defer { cValues.forEach { free($0) } }
        return cValues.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: max(1, buffer.count)) { p in
                body(values.isEmpty ? nil : p)
            }
        }
    }

    /// Reconnects (libpq's `PQreset`, same parameters) when the connection broke, so that a
    /// statement after a Postgres restart works again; the statement that met the break
    /// failed with `.connectionLost` and is the caller's to retry. Session state is set up
    /// again (UTC); advisory locks and prepared state of the old session are gone.
    /// - Important: call on `queue`.
    func ensureConnected() throws {
        guard PQstatus(handle) != CONNECTION_OK else { return }
        PQreset(handle)
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
            throw PostgresError(.connectionFailed, "cannot reconnect to \(redactedURL): \(message)", query: nil)
        }
        PQclear(PQexec(handle, "SET TIME ZONE 'UTC'"))
        preparedNames = [:]  // the new session has none
        preparedSerial = 0
        resetCount.increment()
        logger.notice("reconnected to Postgres", metadata: ["url": "\(redactedURL)"])
    }

    /// How many times this connection was re-established after a break.
    public var reconnections: Int { resetCount.value }

    func check(_ result: OpaquePointer?, sql: String) throws {
        guard let result else { throw connectionError(sql: sql) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_COPY_IN, PGRES_EMPTY_QUERY: return
        case _ where PQstatus(handle) != CONNECTION_OK:
            // The server went away during the statement (a restart, `terminating connection`).
            throw connectionError(sql: sql)
        default:
            func field(_ code: Int32) -> String? {
                guard let p = PQresultErrorField(result, code) else { return nil }
                return String(cString: p)
            }
            let state = field(Int32(UInt8(ascii: "C"))) ?? ""
            var message = field(Int32(UInt8(ascii: "M"))) ?? String(cString: PQresultErrorMessage(result))
            if let detail = field(Int32(UInt8(ascii: "D"))) { message += " (\(detail))" }
            if let hint = field(Int32(UInt8(ascii: "H"))) { message += " Hint: \(hint)" }
            throw PostgresError(.server(sqlState: state), message, query: sql)
        }
    }

    func connectionError(sql: String) -> PostgresError {
        let message = String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
        return PostgresError(.connectionLost, "connection to \(redactedURL) failed: \(message)", query: sql)
    }

    func onQueue<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { cont in
            queue.async {
                if self.closed {
                    cont.resume(throwing: PostgresError(.connectionLost, "connection is closed", query: nil))
                    return
                }
                cont.resume(with: Result { try work() })
            }
        }
    }

    func onQueue(_ work: @escaping @Sendable () -> Void) async {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            queue.async { work(); cont.resume() }
        }
    }
}

/// The statements of one open transaction.
public struct PostgresTransaction: Sendable {
    /// Transaction isolation levels.
    public enum Isolation: Sendable {
        /// The default.
        case readCommitted
        /// Snapshot per transaction.
        case repeatableRead
        /// Full serialisability; callers retry on `.serializationFailure`.
        case serializable

        var beginStatement: String {
            switch self {
            case .readCommitted: return "BEGIN"
            case .repeatableRead: return "BEGIN ISOLATION LEVEL REPEATABLE READ"
            case .serializable: return "BEGIN ISOLATION LEVEL SERIALIZABLE"
            }
        }
    }

    let connection: PostgresConnection

    /// Runs a statement with bound parameters inside the transaction.
    public func query(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> PostgresRows {
        try await connection.run(sql, parameters)
    }

    /// Runs a statement inside the transaction and returns the rows it affected.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> Int {
        try await connection.run(sql, parameters).affectedRows
    }

    /// Runs fixed SQL text of several statements inside the transaction.
    /// - Important: no parameters: never pass text built from values.
    public func runScript(_ sql: String) async throws {
        try await connection.runScriptLocked(sql)
    }

    /// `COPY … FROM STDIN` inside the transaction.
    @discardableResult
    public func copyIn(_ sql: String, _ body: (PostgresCopyWriter) async throws -> Void) async throws -> Int {
        try await connection.copyInLocked(sql, body)
    }
}

/// Writes COPY data, buffering into chunks of about 256 KiB.
public final class PostgresCopyWriter: @unchecked Sendable {
    // Used only by the task running the copy body.
    private let connection: PostgresConnection
    private var buffer = Data()
    private let chunk = 256 * 1024

    init(connection: PostgresConnection) {
        self.connection = connection
        buffer.reserveCapacity(chunk)
    }

    /// Appends bytes of COPY data (text, CSV or binary format, as the statement said).
    public func write(_ data: Data) async throws {
        buffer.append(data)
        if buffer.count >= chunk { try await flush() }
    }

    /// Appends text.
    public func write(_ text: String) async throws {
        try await write(Data(text.utf8))
    }

    func flush() async throws {
        guard !buffer.isEmpty else { return }
        let out = buffer
        buffer.removeAll(keepingCapacity: true)
        try await connection.putCopyData(out)
    }
}

/// A failure talking to Postgres.
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure.
    public enum Code: Sendable, Equatable {
        /// The server could not be reached or refused the login.
        case connectionFailed
        /// An open connection broke.
        case connectionLost
        /// The server reported an error with this SQLSTATE.
        case server(sqlState: String)
        /// libpq answered something this wrapper did not expect.
        case protocolViolation
        /// A value could not be decoded into the requested type.
        case decoding
    }

    /// What kind of failure.
    public var code: Code
    /// The server's or wrapper's message.
    public var message: String
    /// The statement text (never the parameter values, which may be secrets).
    public var query: String?

    /// Makes an error.
    public init(_ code: Code, _ message: String, query: String?) {
        self.code = code
        self.message = message
        self.query = query
    }

    /// The SQLSTATE, for server errors.
    public var sqlState: String? { if case .server(let s) = code { return s }; return nil }
    /// A unique or exclusion constraint was violated (23505).
    public var isUniqueViolation: Bool { sqlState == "23505" }
    /// Whether retrying the transaction may succeed (serialisation failure, deadlock, lost connection).
    public var isRetriable: Bool {
        if code == .connectionLost { return true }
        return ["40001", "40P01"].contains(sqlState ?? "")
    }

    /// The message, the SQLSTATE and the start of the statement.
    public var description: String {
        var s = "postgres: \(message)"
        if let state = sqlState { s += " [SQLSTATE \(state)]" }
        if let query {
            let oneLine = query.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
            s += " in: \(oneLine.prefix(160))"
        }
        return s
    }
}

/// A first-in first-out lock for async code. Taking a free lock and giving it back neither
/// suspends nor hops to another executor (every statement of every connection passes here);
/// a waiter suspends until the holder hands the lock straight to it.
final class AsyncLock: @unchecked Sendable {
    // `held` and `waiters` are guarded by `state`.
    private let state = NSLock()
    private var held = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        if state.withLock({ () -> Bool in
            if held { return false }
            held = true
            return true
        }) { return }
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let free = state.withLock { () -> Bool in
                if held { waiters.append(waiter); return false }
                held = true
                return true
            }
            if free { waiter.resume() }
        }
    }

    /// Gives the lock to the longest waiter, or frees it.
    func release() {
        let next = state.withLock { () -> CheckedContinuation<Void, Never>? in
            if waiters.isEmpty { held = false; return nil }
            return waiters.removeFirst()
        }
        next?.resume()
    }

    func withLock<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    func withLock(_ body: () async -> Void) async {
        await acquire()
        defer { release() }
        await body()
    }
}

/// Carries an error out of a non-Sendable context; errors are values and never mutated here.
struct SendableError: @unchecked Sendable {
    let error: Error
    init(_ error: Error) { self.error = error }
}

/// Anything that runs statements: a connection (each statement on its own) or an open transaction.
public protocol PostgresExecutor: Sendable {
    /// Runs a statement with bound parameters and returns its rows.
    func query(_ sql: String, _ parameters: [(any PostgresEncodable)?]) async throws -> PostgresRows
}

extension PostgresExecutor {
    /// Runs a statement and returns the number of rows it affected.
    @discardableResult
    public func exec(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> Int {
        try await query(sql, parameters).affectedRows
    }
}

extension PostgresConnection: PostgresExecutor {}
extension PostgresTransaction: PostgresExecutor {}

/// A thread-safe count.
final class Counter: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var n = 0
    func increment() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
