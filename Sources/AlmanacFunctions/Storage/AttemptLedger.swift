import AlmanacCore
import AlmanacPostgres
import Foundation

/// Attempts counted in Postgres (`event_attempts`), before each handler run, so that a
/// handler which takes its process down with it still spends its attempts. An event is
/// keyed by its tenant, source and id (CloudEvents makes ids unique per source only).
enum AttemptLedger {
    /// What `open` found.
    struct Opening: Sendable {
        /// The outcome already recorded for the event (`succeeded`, `dead_lettered`), when it was processed before.
        var processed: String?
        /// The number of the attempt now begun (1 for a new event).
        var attempt: Int
        /// Whether the attempt before this one never finished: its process died during it.
        var previousDied: Bool
    }

    /// Looks the event up and, unless it was processed, begins its next attempt: one statement.
    static func open(function: String, event: CloudEvent, instance: String, in db: PostgresConnection) async throws -> Opening {
        let rows = try await db.query("""
            WITH prior AS (SELECT running FROM event_attempts WHERE function = $1 AND tenant = $3 AND source = $5 AND event_id = $2),
            done AS (SELECT outcome FROM processed_events WHERE function = $1 AND tenant = $3 AND source = $5 AND event_id = $2),
            up AS (
                INSERT INTO event_attempts (function, event_id, tenant, source, attempts, running, instance)
                SELECT $1, $2, $3, $5, 1, true, $4 WHERE NOT EXISTS (SELECT 1 FROM done)
                ON CONFLICT (function, tenant, source, event_id) DO UPDATE
                    SET attempts = event_attempts.attempts + 1, running = true, instance = EXCLUDED.instance, started_at = now()
                RETURNING attempts)
            SELECT (SELECT outcome FROM done) AS outcome, (SELECT attempts FROM up) AS attempts,
                   coalesce((SELECT running FROM prior), false) AS died
            """, [function, event.id, event.tenant, instance, event.source])
        let row = rows[0]
        return Opening(processed: row.text("outcome"), attempt: try row.decodeIfPresent("attempts", as: Int.self) ?? 0,
                       previousDied: try row.decode("died", as: Bool.self))
    }

    /// Begins a further attempt in the same process.
    static func begin(function: String, event: CloudEvent, instance: String, in db: PostgresConnection) async throws {
        try await db.exec("""
            UPDATE event_attempts SET attempts = attempts + 1, running = true, instance = $3, started_at = now()
            WHERE function = $1 AND tenant = $4 AND source = $5 AND event_id = $2
            """, [function, event.id, instance, event.tenant, event.source])
    }

    /// Records that an attempt ended (failed or timed out) without the process dying.
    static func ended(function: String, event: CloudEvent, in db: any PostgresExecutor) async throws {
        try await db.exec("UPDATE event_attempts SET running = false WHERE function = $1 AND tenant = $3 AND source = $4 AND event_id = $2",
                          [function, event.id, event.tenant, event.source])
    }

    /// Forgets the event's attempts: it reached a final outcome (inside that outcome's transaction).
    static func close(function: String, event: CloudEvent, in db: any PostgresExecutor) async throws {
        try await db.exec("DELETE FROM event_attempts WHERE function = $1 AND tenant = $3 AND source = $4 AND event_id = $2",
                          [function, event.id, event.tenant, event.source])
    }
}
