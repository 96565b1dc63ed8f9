import AlmanacPostgres
import Foundation

/// What the launcher leaves in Postgres for operators (`almanac status`, the API's function
/// board): running instances, the GPU queue, crash loops; and the figures read beside them
/// (invocations per function, a tenant's recent failures).
public enum RuntimeBoard {
    /// A running instance.
    public struct InstanceRow: Sendable, Equatable {
        /// Its id.
        public var instance: String
        /// Its function.
        public var function: String
        /// Its process id.
        public var pid: Int
        /// The GPU slot it holds.
        public var gpu: String?
        /// When it started.
        public var started: Date
    }

    /// Invocations of one function, by outcome.
    public struct InvocationCounts: Sendable, Equatable {
        /// Attempts that succeeded.
        public var succeeded: Int
        /// Attempts that failed or timed out.
        public var failed: Int
        /// Events dead-lettered.
        public var deadLettered: Int
        /// The last attempt's start.
        public var last: Date?
    }

    /// A function whose instances keep exiting abnormally.
    public struct CrashLoopRow: Sendable, Equatable {
        /// The function.
        public var function: String
        /// Abnormal exits in a row.
        public var consecutive: Int
        /// How the last one ended.
        public var lastStatus: String
        /// When the next start may happen.
        public var heldUntil: Date
    }

    /// A function waiting for a GPU.
    public struct QueuedRow: Sendable, Equatable {
        /// The function.
        public var function: String
        /// Since when.
        public var waitingSince: Date
        /// Its lag then.
        public var lag: Int64
    }

    // MARK: The launcher's writes

    /// Replaces the published instances and GPU queue with the launcher's current ones.
    public static func publish(instances: [Launcher.Instance], gpuQueue: [String], lags: [String: Int64], in db: PostgresConnection) async throws {
        try await db.transaction { tx in
            try await tx.exec("DELETE FROM function_instances")
            for i in instances {
                try await tx.exec("INSERT INTO function_instances (instance, function, pid, gpu, started_at) VALUES ($1, $2, $3, $4, $5)",
                                  [i.id, i.function, Int(i.pid), i.gpu, i.startedAt])
            }
            try await tx.exec("DELETE FROM gpu_queue WHERE NOT (function = ANY($1::text[]))", [gpuQueue])
            for name in gpuQueue {
                try await tx.exec("""
                    INSERT INTO gpu_queue (function, lag) VALUES ($1, $2)
                    ON CONFLICT (function) DO UPDATE SET lag = EXCLUDED.lag
                    """, [name, lags[name] ?? 0])
            }
        }
    }

    /// Records a function's crash loop: `consecutive` abnormal exits, held for `holdSeconds`.
    public static func recordCrashLoop(function: String, consecutive: Int, lastStatus: String, holdSeconds: Double,
                                       in db: PostgresConnection) async throws {
        try await db.exec("""
            INSERT INTO function_crashes (function, consecutive, last_status, last_at, held_until)
            VALUES ($1, $2, $3, now(), now() + make_interval(secs => $4))
            ON CONFLICT (function) DO UPDATE SET consecutive = EXCLUDED.consecutive, last_status = EXCLUDED.last_status,
                last_at = EXCLUDED.last_at, held_until = EXCLUDED.held_until
            """, [function, consecutive, lastStatus, holdSeconds])
    }

    /// Forgets a function's crash loop (an instance exited normally).
    public static func clearCrashLoop(function: String, in db: PostgresConnection) async throws {
        try await db.exec("DELETE FROM function_crashes WHERE function = $1", [function])
    }

    // MARK: Reads

    /// Running instances, by id.
    public static func instances(in db: PostgresConnection) async throws -> [InstanceRow] {
        try await db.query("""
            SELECT instance, function, pid, gpu, started_at FROM function_instances ORDER BY instance
            """).map { r in
            InstanceRow(instance: try r.decode("instance"), function: try r.decode("function"), pid: try r.decode("pid"),
                        gpu: r.text("gpu"), started: try r.decode("started_at"))
        }
    }

    /// Invocation counts per function.
    public static func invocationCounts(in db: PostgresConnection) async throws -> [String: InvocationCounts] {
        let rows = try await db.query("""
            SELECT function, count(*) FILTER (WHERE outcome = 'succeeded')::bigint AS ok,
                   count(*) FILTER (WHERE outcome IN ('failed', 'timed_out'))::bigint AS failed,
                   count(*) FILTER (WHERE outcome = 'dead_lettered')::bigint AS dead,
                   max(started_at) AS last
            FROM invocations GROUP BY function
            """)
        var out: [String: InvocationCounts] = [:]
        for r in rows {
            out[try r.decode("function")] = InvocationCounts(succeeded: try r.decode("ok"), failed: try r.decode("failed"),
                                                             deadLettered: try r.decode("dead"), last: try r.decodeIfPresent("last", as: Date.self))
        }
        return out
    }

    /// Functions with at least `consecutive` abnormal exits in a row.
    public static func crashLoops(atLeast consecutive: Int, in db: PostgresConnection) async throws -> [CrashLoopRow] {
        try await db.query("""
            SELECT function, consecutive, last_status, held_until FROM function_crashes WHERE consecutive >= $1 ORDER BY function
            """, [consecutive]).map { r in
            CrashLoopRow(function: try r.decode("function"), consecutive: try r.decode("consecutive"),
                         lastStatus: r.text("last_status") ?? "", heldUntil: try r.decode("held_until"))
        }
    }

    /// Functions waiting for a GPU, longest first.
    public static func gpuQueue(in db: PostgresConnection) async throws -> [QueuedRow] {
        try await db.query("""
            SELECT function, waiting_since, lag FROM gpu_queue ORDER BY waiting_since
            """).map { r in
            QueuedRow(function: try r.decode("function"), waitingSince: try r.decode("waiting_since"), lag: try r.decodeIfPresent("lag", as: Int64.self) ?? 0)
        }
    }

    /// A failed attempt, as a tenant sees its own.
    public struct FailureRow: Sendable, Equatable {
        /// The function.
        public var function: String
        /// The event, when it decoded.
        public var eventID: String?, eventType: String?
        /// `failed`, `timed_out` or `dead_lettered`.
        public var outcome: String
        /// Which attempt.
        public var attempt: Int
        /// What went wrong.
        public var error: String?
        /// When the attempt started.
        public var startedAt: Date
    }

    /// The tenant's latest failed attempts, newest first (through the partial index of
    /// failures only: a board refreshed every few seconds must not scan every invocation).
    public static func recentFailures(tenant: String, limit: Int, in db: PostgresConnection) async throws -> [FailureRow] {
        try await db.query("""
            SELECT function, event_id, event_type, outcome, attempt, error, started_at FROM invocations
            WHERE tenant = $1 AND outcome IN ('failed', 'timed_out', 'dead_lettered') ORDER BY id DESC LIMIT $2
            """, [tenant, limit]).map { f in
            FailureRow(function: try f.decode("function"), eventID: f.text("event_id"), eventType: f.text("event_type"),
                       outcome: try f.decode("outcome"), attempt: try f.decode("attempt"), error: f.text("error"), startedAt: try f.decode("started_at"))
        }
    }

    /// Attempts recorded per function and outcome, with the handler time they took (for `/metrics`).
    public static func invocationTotals(in db: PostgresConnection) async throws -> [(function: String, outcome: String, count: Int, seconds: Double)] {
        try await db.query("""
            SELECT function, outcome, count(*)::bigint AS n, coalesce(sum(duration_ms), 0) / 1000.0 AS seconds
            FROM invocations GROUP BY function, outcome ORDER BY function, outcome
            """).map { (try $0.decode("function"), try $0.decode("outcome"), try $0.decode("n"), try $0.decode("seconds")) }
    }
}
