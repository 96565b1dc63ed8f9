import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import Foundation

/// One row per attempt to handle an event.
public enum InvocationLog {
    /// What an attempt came to.
    public enum Outcome: String, Sendable {
        /// The handler returned and its effects committed.
        case succeeded
        /// The handler threw.
        case failed
        /// The handler ran past its deadline.
        case timedOut = "timed_out"
        /// The event had already been processed; nothing ran.
        case duplicate
        /// The last attempt failed and the event went to the dead letters.
        case deadLettered = "dead_lettered"
    }

    /// Records an attempt.
    public static func record(function: String, event: CloudEvent?, instance: String, attempt: Int, outcome: Outcome,
                              error: String?, startedAt: Date, duration: Double, in db: any PostgresExecutor) async throws {
        try await db.exec("""
            INSERT INTO invocations (function, event_id, event_type, tenant, trace_id, instance, attempt, outcome, error, started_at, duration_ms)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            """, [function, event?.id, event?.type, event?.tenant ?? "default", event?.traceID, instance, attempt,
                  outcome.rawValue, error, startedAt, duration * 1000])
    }
}
