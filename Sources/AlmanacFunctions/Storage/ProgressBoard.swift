import AlmanacCore
import AlmanacPostgres
import Foundation

/// The progress of the attempts in hand (`function_progress`): what handlers report through
/// `context.progress`, kept for `almanac status` while they run and deleted with the event's
/// outcome (in its commit or dead-letter transaction).
public enum ProgressBoard {
    /// One function's progress on one event.
    public struct Row: Sendable, Equatable {
        /// The function.
        public var function: String
        /// The event's tenant and id.
        public var tenant: String, eventID: String
        /// The attempt reporting.
        public var attempt: Int
        /// What it reported last.
        public var progress: JSONValue
        /// When the attempt first reported, and last.
        public var started: Date, updated: Date
    }

    /// Records the attempt's latest progress.
    public static func report(function: String, event: CloudEvent, attempt: Int, progress: JSONValue, in db: PostgresConnection) async throws {
        try await db.execute("""
            INSERT INTO function_progress (function, tenant, source, event_id, attempt, progress) VALUES ($1, $2, $3, $4, $5, $6::jsonb)
            ON CONFLICT (function, tenant, source, event_id) DO UPDATE SET attempt = EXCLUDED.attempt, progress = EXCLUDED.progress,
                started_at = CASE WHEN function_progress.attempt = EXCLUDED.attempt THEN function_progress.started_at ELSE now() END,
                updated_at = now()
            """, [function, event.tenant, event.source, event.id, attempt, progress.serialized()])
    }

    /// Deletes the event's progress (in the transaction that settles the event).
    public static func clear(function: String, event: CloudEvent, in db: any PostgresExecutor) async throws {
        try await db.exec("DELETE FROM function_progress WHERE function = $1 AND tenant = $2 AND source = $3 AND event_id = $4",
                          [function, event.tenant, event.source, event.id])
    }

    /// Every attempt's progress, oldest first.
    public static func current(in db: PostgresConnection) async throws -> [Row] {
        try await db.query("""
            SELECT function, tenant, event_id, attempt, progress::text AS progress, started_at, updated_at
            FROM function_progress ORDER BY started_at, function
            """).map { r in
            Row(function: try r.decode("function"), tenant: try r.decode("tenant"), eventID: try r.decode("event_id"), attempt: try r.decode("attempt"),
                progress: (try? JSONValue(parsing: Data((r.text("progress") ?? "null").utf8))) ?? .null,
                started: try r.decode("started_at"), updated: try r.decode("updated_at"))
        }
    }
}

/// Writes an attempt's latest progress at most once per `interval`, off the handler's path:
/// `update` only keeps the value; a task, started by the first report (an attempt that
/// reports nothing costs nothing), writes it, so a handler may report on every item.
final class ProgressFlusher: @unchecked Sendable {
    // `latest`, `dirty`, `task` and `finished` are guarded by `lock`.
    private let lock = NSLock()
    private var latest: JSONValue = .null
    private var dirty = false
    private var task: Task<Void, Never>?
    private var finished = false
    let function: String, event: CloudEvent, attempt: Int, database: PostgresConnection, interval: Duration
    let onFlush: @Sendable (JSONValue) -> Void

    init(function: String, event: CloudEvent, attempt: Int, database: PostgresConnection, interval: Duration = .seconds(1),
         onFlush: @escaping @Sendable (JSONValue) -> Void) {
        self.function = function
        self.event = event
        self.attempt = attempt
        self.database = database
        self.interval = interval
        self.onFlush = onFlush
    }

    /// Keeps the latest progress for the next write.
    func update(_ value: JSONValue) {
        lock.withLock {
            guard !finished else { return }
            latest = value
            dirty = true
            if task == nil { task = Task { [weak self] in await self?.writeUntilCancelled() } }
        }
    }

    private func writeUntilCancelled() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            guard let value = take() else { continue }
            onFlush(value)
            try? await ProgressBoard.report(function: function, event: event, attempt: attempt, progress: value, in: database)
        }
    }

    private func take() -> JSONValue? {
        lock.withLock { () -> JSONValue? in
            guard dirty else { return nil }
            dirty = false
            return latest
        }
    }

    /// Stops writing and waits for a write in hand (before the event's outcome clears the row).
    func finish() async {
        let running = lock.withLock { () -> Task<Void, Never>? in
            finished = true
            return task
        }
        running?.cancel()
        await running?.value
    }
}
