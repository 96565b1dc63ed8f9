import Foundation
import Logging

/// Applies versioned SQL migrations from a folder: `0001_init.sql`, `0002_….sql`, …
///
/// Each file runs once, in its own transaction, under an advisory lock so that two
/// processes starting together do not race; applied versions are kept in `schema_migrations`.
public struct PostgresMigrator: Sendable {
    /// One migration file.
    public struct Migration: Sendable, Equatable {
        /// The number before the first underscore.
        public var version: Int
        /// The rest of the file name, without `.sql`.
        public var name: String
        /// The SQL text.
        public var sql: String
    }

    /// The advisory lock key that serialises migrators ("almanac" in ASCII).
    static let lockKey: Int64 = 0x616C6D616E6163

    /// The migrations found, in version order.
    public let migrations: [Migration]

    /// Reads the migrations in a folder.
    /// - Throws: `PostgresError` naming a badly named file or two files with one version.
    public init(directory: String) throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var found: [Migration] = []
        for name in names.sorted() where name.hasSuffix(".sql") {
            let stem = String(name.dropLast(4))
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]) else {
                throw PostgresError(.protocolViolation,
                                    "\(directory)/\(name): migration files are named NNNN_description.sql", query: nil)
            }
            if let clash = found.first(where: { $0.version == version }) {
                throw PostgresError(.protocolViolation,
                                    "\(directory)/\(name): version \(version) is also \(clash.name).sql", query: nil)
            }
            let sql = try String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8)
            found.append(Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql))
        }
        guard !found.isEmpty else {
            throw PostgresError(.protocolViolation, "no migrations (NNNN_name.sql) in \(directory)", query: nil)
        }
        migrations = found.sorted { $0.version < $1.version }
    }

    /// Applies every migration not yet applied.
    /// - Returns: the versions applied by this call.
    @discardableResult
    public func migrate(_ connection: PostgresConnection, logger: Logger) async throws -> [Int] {
        try await connection.runScript("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())
            """)
        var applied: [Int] = []
        for m in migrations {
            let ran = try await connection.transaction { tx -> Bool in
                // One migrator at a time across processes; the lock ends with the transaction.
                try await tx.execute("SELECT pg_advisory_xact_lock($1)", [PostgresMigrator.lockKey])
                let exists = try await tx.query("SELECT 1 FROM schema_migrations WHERE version = $1", [m.version])
                if !exists.isEmpty { return false }
                try await tx.runScript(m.sql)
                try await tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [m.version, m.name])
                return true
            }
            guard ran else { continue }
            logger.info("applied migration", metadata: ["version": "\(m.version)", "name": "\(m.name)"])
            applied.append(m.version)
        }
        return applied
    }
}
