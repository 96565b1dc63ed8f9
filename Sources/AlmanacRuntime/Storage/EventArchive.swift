import AlmanacCore
import AlmanacPostgres
import Foundation

/// The archive of every event the router saw, for `almanac replay`.
public enum EventArchive {
    /// Archived events matching every given filter, oldest first.
    /// - Parameter causation: an event id: that event and everything it caused, transitively.
    public static func select(in db: PostgresConnection, since: Date?, until: Date?, type: String?, subject: String?,
                              causation: String?, limit: Int = 100_000) async throws -> [CloudEvent] {
        let rows = try await db.query("""
            WITH RECURSIVE chain(id) AS (
                SELECT id FROM event_archive WHERE $5::text IS NOT NULL AND id = $5
                UNION
                SELECT a.id FROM event_archive a JOIN chain c ON a.causation_id = c.id
            )
            SELECT event::text AS event FROM event_archive
            WHERE ($1::timestamptz IS NULL OR coalesce(time, archived_at) >= $1)
              AND ($2::timestamptz IS NULL OR coalesce(time, archived_at) < $2)
              AND ($3::text IS NULL OR type = $3)
              AND ($4::text IS NULL OR subject = $4)
              AND ($5::text IS NULL OR id IN (SELECT id FROM chain))
            ORDER BY archived_at, coalesce(time, archived_at)
            LIMIT $6
            """, [since, until, type, subject, causation, limit])
        return try rows.map { try CloudEvent(structured: Data(try $0.decode("event", as: String.self).utf8)) }
    }
}
