import AlmanacPostgres
import Foundation

/// The Kafka clusters this deployment has seen (`kafka_clusters`): when each was first seen
/// and what its reconciliation routed again, so that a cluster that comes back empty is made
/// whole from the events archived since.
enum KafkaClusters {
    /// The start of the window of events that may be unfinished on `cluster` — the earlier of
    /// when it was first seen and the oldest event its reconciliation routed again — or nil
    /// when the cluster is new.
    static func window(of cluster: String, in db: PostgresConnection) async throws -> Date?? {
        let rows = try await db.query("\(windowQuery) WHERE cluster_id = $1", [cluster])
        guard let row = rows.first else { return nil }
        return .some(try row.decodeIfPresent("t", as: Date.self))
    }

    /// The window of the most recently seen cluster, if any.
    static func latestWindow(in db: PostgresConnection) async throws -> Date? {
        try await db.query("\(windowQuery) ORDER BY first_seen DESC LIMIT 1").first?.decodeIfPresent("t", as: Date.self)
    }

    private static let windowQuery = "SELECT least(first_seen, coalesce(oldest_rerouted, first_seen)) AS t FROM kafka_clusters"

    /// Records a cluster seen for the first time.
    static func register(_ cluster: String, in db: PostgresConnection) async throws {
        try await db.exec("INSERT INTO kafka_clusters (cluster_id) VALUES ($1) ON CONFLICT DO NOTHING", [cluster])
    }

    /// Starts the cluster's window again: its offsets went backwards (it was emptied).
    static func restart(_ cluster: String, in db: PostgresConnection) async throws {
        try await db.exec("UPDATE kafka_clusters SET first_seen = now(), oldest_rerouted = NULL WHERE cluster_id = $1", [cluster])
    }

    /// Records a reconciliation and the oldest event it routed again.
    static func reconciled(_ cluster: String, oldestRerouted oldest: (id: String, source: String)?, in db: PostgresConnection) async throws {
        try await db.exec("""
            UPDATE kafka_clusters SET reconciled_at = now(),
                oldest_rerouted = (SELECT archived_at FROM event_archive WHERE id = $2 AND source = $3)
            WHERE cluster_id = $1
            """, [cluster, oldest?.id, oldest?.source])
    }
}
