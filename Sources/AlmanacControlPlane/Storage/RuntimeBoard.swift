import AlmanacPostgres
import Foundation

/// What the launcher leaves in Postgres for operators (`almanac status`, the API's function
/// board): running instances, the GPU queue, crash loops; and the figures read beside them
/// (invocations per function, open dead letters). Times are rendered by Postgres
/// (`YYYY-MM-DD HH24:MI:SS`, UTC in the embedded default).
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
        public var started: String
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
        public var last: String?
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
        public var heldUntil: String
    }

    /// A function waiting for a GPU.
    public struct QueuedRow: Sendable, Equatable {
        /// The function.
        public var function: String
        /// Since when.
        public var waitingSince: String
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
            SELECT instance, function, pid, gpu, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS') AS started
            FROM function_instances ORDER BY instance
            """).map { r in
            InstanceRow(instance: try r.decode("instance"), function: try r.decode("function"), pid: try r.decode("pid"),
                        gpu: r.text("gpu"), started: r.text("started") ?? "")
        }
    }

    /// Invocation counts per function.
    public static func invocationCounts(in db: PostgresConnection) async throws -> [String: InvocationCounts] {
        let rows = try await db.query("""
            SELECT function, count(*) FILTER (WHERE outcome = 'succeeded')::bigint AS ok,
                   count(*) FILTER (WHERE outcome IN ('failed', 'timed_out'))::bigint AS failed,
                   count(*) FILTER (WHERE outcome = 'dead_lettered')::bigint AS dead,
                   to_char(max(started_at), 'YYYY-MM-DD HH24:MI:SS') AS last
            FROM invocations GROUP BY function
            """)
        var out: [String: InvocationCounts] = [:]
        for r in rows {
            out[try r.decode("function")] = InvocationCounts(succeeded: try r.decode("ok"), failed: try r.decode("failed"),
                                                             deadLettered: try r.decode("dead"), last: r.text("last"))
        }
        return out
    }

    /// Functions with at least `consecutive` abnormal exits in a row.
    public static func crashLoops(atLeast consecutive: Int, in db: PostgresConnection) async throws -> [CrashLoopRow] {
        try await db.query("""
            SELECT function, consecutive, last_status, to_char(held_until, 'YYYY-MM-DD HH24:MI:SS') AS held FROM function_crashes
            WHERE consecutive >= $1 ORDER BY function
            """, [consecutive]).map { r in
            CrashLoopRow(function: try r.decode("function"), consecutive: try r.decode("consecutive"),
                         lastStatus: r.text("last_status") ?? "", heldUntil: r.text("held") ?? "")
        }
    }

    /// Functions waiting for a GPU, longest first.
    public static func gpuQueue(in db: PostgresConnection) async throws -> [QueuedRow] {
        try await db.query("""
            SELECT function, to_char(waiting_since, 'YYYY-MM-DD HH24:MI:SS') AS since, lag FROM gpu_queue ORDER BY waiting_since
            """).map { r in
            QueuedRow(function: try r.decode("function"), waitingSince: r.text("since") ?? "", lag: try r.decodeIfPresent("lag", as: Int64.self) ?? 0)
        }
    }

    /// Open dead letters per stage.
    public static func openDeadLetters(in db: PostgresConnection) async throws -> [(stage: String, count: Int)] {
        try await db.query("SELECT stage, count(*)::bigint AS n FROM dead_letters WHERE status = 'open' GROUP BY stage ORDER BY stage")
            .map { (try $0.decode("stage"), try $0.decode("n")) }
    }
}
