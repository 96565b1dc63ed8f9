import AlmanacCore
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Logging
import Testing

@Suite struct PostgresTests {
    @Test func typedParametersAndDecodingRoundTrip() async throws {
        let db = try await PostgresConnection.connect(url: try await TestPostgres.shared.freshDatabase())
        let when = Date(timeIntervalSince1970: 1_795_428_000.123456)
        let row = try await db.query("""
            SELECT $1::text AS s, $2::bigint AS i, $3::float8 AS d, $4::bool AS b, $5::timestamptz AS t, $6::bytea AS bytes,
                   $7::text[] AS arr, $8::text AS nothing, $9::float8 AS nan
            """, ["it's \"quoted\"; DROP TABLE x; --", 9_007_199_254_740_993 as Int64, 0.1, true, when, Data([0, 255, 7]),
                  ["a", "b,\"c\"", "{d}"], nil, Double.nan]).first!
        #expect(try row.decode("s", as: String.self) == "it's \"quoted\"; DROP TABLE x; --")
        #expect(try row.decode("i", as: Int64.self) == 9_007_199_254_740_993)
        #expect(try row.decode("d", as: Double.self) == 0.1)
        #expect(try row.decode("b", as: Bool.self))
        #expect(abs(try row.decode("t", as: Date.self).timeIntervalSince(when)) < 1e-6)
        #expect(try row.decode("bytes", as: Data.self) == Data([0, 255, 7]))
        #expect(row.text("arr") == #"{a,"b,\"c\"","{d}"}"#)
        #expect(try row.decodeIfPresent("nothing", as: String.self) == nil)
        #expect(try row.decode("nan", as: Double.self).isNaN)
        #expect { _ = try row.decode("nothing", as: String.self) } throws: { "\($0)".contains("'nothing' is NULL") }
        #expect { _ = try row.decode("s", as: Int.self) } throws: { "\($0)".contains("is not Int") }
        await db.close()
    }

    /// `query(prepared:)` prepares a statement once per session, and prepares it again when
    /// the session lost it: a DISCARD, a change of the table under it, a reconnect.
    @Test func preparedStatementsSurviveDiscardDDLAndReconnects() async throws {
        let db = try await PostgresConnection.connect(url: try await TestPostgres.shared.freshDatabase())
        let other = try await PostgresConnection.connect(url: try await TestPostgres.shared.freshDatabase())
        try await db.exec("CREATE TABLE kv (k text PRIMARY KEY, v int)")
        try await db.exec("INSERT INTO kv VALUES ('a', 1), ('b', 2)")
        let lookup = "SELECT * FROM kv WHERE k = $1"
        func value(_ k: String) async throws -> Int? { try await db.query(prepared: lookup, [k]).first?.decodeIfPresent("v") }
        #expect(try await value("a") == 1)
        #expect(try await value("b") == 2)
        #expect(try await db.query("SELECT count(*) AS n FROM pg_prepared_statements").first?.decode("n", as: Int.self) == 1,
                "one statement, prepared once")
        try await db.runScript("DISCARD ALL")
        #expect(try await value("a") == 1, "prepared again after DISCARD")
        try await db.exec("ALTER TABLE kv ADD COLUMN w int DEFAULT 7")
        let row = try await db.query(prepared: lookup, ["b"]).first
        #expect(try row?.decode("w", as: Int.self) == 7, "prepared again when the table's columns changed")
        let pid: Int = try await db.query("SELECT pg_backend_pid() AS p").first!.decode("p")
        try await other.exec("SELECT pg_terminate_backend($1)", [pid])
        // The statement that meets the break fails; the next reconnects and prepares again.
        var answered: Int?
        for _ in 0..<3 where answered == nil { answered = try? await value("a") }
        #expect(answered == 1)
        #expect(db.reconnections == 1)
        await db.close()
        await other.close()
    }

    @Test func transactionsCommitOrRollBackWhole() async throws {
        let db = try await PostgresConnection.connect(url: try await TestPostgres.shared.freshDatabase())
        try await db.exec("CREATE TABLE t (k int PRIMARY KEY)")
        try await db.transaction { tx in
            try await tx.exec("INSERT INTO t VALUES ($1)", [1])
            try await tx.exec("INSERT INTO t VALUES ($1)", [2])
        }
        await #expect {
            try await db.transaction { tx in
                try await tx.exec("INSERT INTO t VALUES ($1)", [3])
                try await tx.exec("INSERT INTO t VALUES ($1)", [1])
            }
        } throws: { ($0 as? PostgresError)?.isUniqueViolation == true }
        #expect(try await db.query("SELECT k FROM t ORDER BY k").map { try $0.decode("k", as: Int.self) } == [1, 2])
        // The connection is usable after a failed transaction.
        #expect(try await db.query("SELECT 1 AS one").first?.decode("one", as: Int.self) == 1)
        await db.close()
    }

    @Test func copyStreamsRowsAndABadRowChangesNothing() async throws {
        let db = try await PostgresConnection.connect(url: try await TestPostgres.shared.freshDatabase())
        try await db.exec("CREATE TABLE obs (item text, ts timestamptz, v float8)")
        let n = try await db.copyIn("COPY obs (item, ts, v) FROM STDIN WITH (FORMAT csv)") { w in
            for i in 0..<50_000 { try await w.write("item\(i % 10),2026-01-01T00:00:00Z,\(Double(i) / 2)\n") }
        }
        #expect(n == 50_000)
        await #expect {
            try await db.copyIn("COPY obs (item, ts, v) FROM STDIN WITH (FORMAT csv)") { w in
                try await w.write("a,2026-01-01T00:00:00Z,1\nb,not a time,2\n")
            }
        } throws: { "\($0)".contains("timestamp") }
        #expect(try await db.query("SELECT count(*) AS n FROM obs").first?.decode("n", as: Int.self) == 50_000)
        await db.close()
    }

    @Test func migrationsApplyOnceAndErrorsNeverShowPasswords() async throws {
        let url = try await TestPostgres.shared.freshDatabase()
        let db = try await PostgresConnection.connect(url: url)
        let again = try await PostgresMigrator(directory: TestPaths.root + "/infra/migrations").migrate(db, logger: Logger(label: "t"))
        #expect(again.isEmpty, "the fixture already migrated; nothing runs twice")
        #expect(try await db.query("SELECT count(*) AS n FROM schema_migrations").first?.decode("n", as: Int.self) ?? 0 >= 1)
        await db.close()
        await #expect {
            _ = try await PostgresConnection.connect(url: "postgresql://almanac:s3cret@127.0.0.1:1/x")
        } throws: { error in
            let text = "\(error)"
            return text.contains("cannot connect") && !text.contains("s3cret") && text.contains("almanac:***@")
        }
    }
}

@Suite struct EventSchemaExampleTests {
    @Test func everySchemaHasAValidAndAnInvalidExampleThatBehave() throws {
        let dir = URL(fileURLWithPath: TestPaths.root + "/events")
        let registry = try EventSchemaRegistry(directory: dir)
        #expect(!registry.schemas.isEmpty)
        for (type, schema) in registry.schemas {
            let valid = try JSONValue(parsing: Data(contentsOf: dir.appendingPathComponent("examples/\(type).valid.json")))
            let invalid = try JSONValue(parsing: Data(contentsOf: dir.appendingPathComponent("examples/\(type).invalid.json")))
            #expect(schema.violations(of: valid).isEmpty, "\(type).valid.json passes")
            #expect(!schema.violations(of: invalid).isEmpty, "\(type).invalid.json fails")
        }
    }
}
