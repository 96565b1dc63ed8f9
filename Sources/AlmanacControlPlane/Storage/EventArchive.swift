import AlmanacFunctions
import AlmanacCore
import AlmanacPostgres
import Foundation

/// The archive of every event the ingress accepted and the router saw: for `almanac
/// replay`, and what the control plane reconciles a new Kafka cluster from.
public enum EventArchive {
    /// Stores events; an event archived before (same tenant, source and id) is left as it was.
    public static func store(_ events: [CloudEvent], in db: any PostgresExecutor) async throws {
        guard !events.isEmpty else { return }
        try await db.exec("""
            INSERT INTO event_archive (source, id, type, subject, tenant, time, causation_id, correlation_id, event)
            SELECT s, i, t, sub, ten, tm, c, cor, e::jsonb
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::text[], $9::text[])
                 AS x(s, i, t, sub, ten, tm, c, cor, e)
            ON CONFLICT DO NOTHING
            """, [events.map(\.source), events.map(\.id), events.map(\.type), PostgresNullableArray(events.map(\.subject)),
                  events.map(\.tenant), PostgresNullableArray(events.map(\.time)), PostgresNullableArray(events.map(\.causationID)),
                  PostgresNullableArray(events.map(\.correlationID)), events.map { $0.structuredJSON().serialized() }])
    }

    /// Which time a range selects on.
    public enum Clock: String, Sendable, CaseIterable {
        /// When the router archived the event (the runtime's own clock).
        case archived
        /// The event's `time` attribute, as its producer set it (the archive time when it has none).
        case eventTime = "event-time"
    }

    /// What to select: every filter given must hold.
    public struct Filter: Sendable {
        /// From this time (inclusive).
        public var since: Date?
        /// Until this time (exclusive).
        public var until: Date?
        /// Which time `since` and `until` refer to.
        public var clock: Clock
        /// Only this type.
        public var type: String?
        /// Only this subject.
        public var subject: String?
        /// An event id: that event and everything it caused, transitively.
        public var causation: String?

        /// Makes a filter.
        public init(since: Date? = nil, until: Date? = nil, clock: Clock = .archived, type: String? = nil, subject: String? = nil,
                    causation: String? = nil) {
            (self.since, self.until, self.clock, self.type, self.subject, self.causation) = (since, until, clock, type, subject, causation)
        }
    }

    /// Where a page ended: the last event's archive time (as Postgres wrote it), id, source and tenant.
    public struct Cursor: Sendable, Equatable {
        var archivedAt: String
        var id: String
        var source: String
        var tenant: String
    }

    /// One page of matching events in archive order (archive time, then id, source and tenant), and
    /// the cursor to pass for the next page (nil after the last).
    public static func page(in db: PostgresConnection, _ filter: Filter, after: Cursor? = nil,
                            limit: Int = 1000) async throws -> (events: [CloudEvent], next: Cursor?) {
        let column = filter.clock == .archived ? "archived_at" : "coalesce(time, archived_at)"  // one of two fixed expressions
        let rows = try await db.query("""
            WITH RECURSIVE chain(id) AS (
                SELECT id FROM event_archive WHERE $5::text IS NOT NULL AND id = $5
                UNION
                SELECT a.id FROM event_archive a JOIN chain c ON a.causation_id = c.id
            )
            SELECT event::text AS event, archived_at::text AS at, id, source, tenant FROM event_archive
            WHERE ($1::timestamptz IS NULL OR \(column) >= $1)
              AND ($2::timestamptz IS NULL OR \(column) < $2)
              AND ($3::text IS NULL OR type = $3)
              AND ($4::text IS NULL OR subject = $4)
              AND ($5::text IS NULL OR id IN (SELECT id FROM chain))
              AND ($7::timestamptz IS NULL OR (archived_at, id, source, tenant) > ($7, $8, $9, $10))
            ORDER BY archived_at, id, source, tenant
            LIMIT $6
            """, [filter.since, filter.until, filter.type, filter.subject, filter.causation, max(1, limit),
                  after?.archivedAt, after?.id, after?.source, after?.tenant])
        let events = try rows.map { try CloudEvent(structured: Data(try $0.decode("event", as: String.self).utf8)) }
        guard rows.count == max(1, limit) else { return (events, nil) }
        let last = rows[rows.count - 1]
        return (events, Cursor(archivedAt: try last.decode("at"), id: try last.decode("id"), source: try last.decode("source"),
                               tenant: try last.decode("tenant")))
    }

    /// Every matching event in archive order, page by page (for tests and small archives;
    /// `replay` pages itself so that any number of events streams through).
    public static func select(in db: PostgresConnection, _ filter: Filter) async throws -> [CloudEvent] {
        var all: [CloudEvent] = []
        var cursor: Cursor?
        repeat {
            let (events, next) = try await page(in: db, filter, after: cursor)
            all += events
            cursor = next
        } while cursor != nil
        return all
    }

    /// Sets outbox rows sent to the bus but never seen there again (not archived, not
    /// dead-lettered by the router) to be relayed again.
    /// - Parameters:
    ///   - sentSince: only rows sent from then (all when nil).
    ///   - olderThan: only rows sent at least this many seconds ago (the sweep's patience).
    /// - Returns: how many rows were re-armed.
    static func rearmUnseenOutbox(in db: PostgresConnection, sentSince: Date?, olderThan: Double?) async throws -> Int {
        try await db.exec("""
            UPDATE outbox o SET sent_at = NULL
            WHERE o.sent_at IS NOT NULL AND o.topic = $1
              AND ($2::timestamptz IS NULL OR o.sent_at >= $2)
              AND ($3::float8 IS NULL OR o.sent_at < now() - make_interval(secs => $3))
              AND NOT EXISTS (SELECT 1 FROM event_archive a WHERE a.id = o.event_id)
              AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.event_id = o.event_id AND d.stage = 'router')
            """, [Outbox.busTopic, sentSince, olderThan])
    }

    /// One event of a data arrival's chain (the arrival itself at depth 0).
    public struct ChainStep: Sendable {
        /// The arrival the chain starts from, when it was archived, and that time in microseconds since 1970 (the cursor).
        public var root: String, rootAt: Date, rootMicros: Int64
        /// The event.
        public var id: String, type: String, subject: String?, archivedAt: Date
        /// Its webhook deliveries (id, state, attempts, last_status, delivered_at), when it has any.
        public var deliveries: JSONValue?
    }

    /// The tenant's latest `limit` data arrivals before the cursor (microseconds, id), each
    /// with the events it caused through causation ids (at most 16 deep) and their webhook
    /// deliveries: arrivals newest first, each chain's events in archive order (at most 5000 steps).
    public static func arrivalChains(tenant: String, before: (Int64, String)?, limit: Int, in db: PostgresConnection) async throws -> [ChainStep] {
        try await db.query("""
            WITH RECURSIVE arrivals AS (
                SELECT id, source, archived_at FROM event_archive
                WHERE tenant = $1 AND type = 'almanac.data.arrived'
                  AND ($2::bigint IS NULL OR (archived_at, id) < (timestamptz 'epoch' + $2 * interval '1 microsecond', $3))
                ORDER BY archived_at DESC, id DESC LIMIT $4
            ), chain AS (
                SELECT a.id AS root, e.id, e.source, e.type, e.subject, e.time, e.archived_at, 0 AS depth
                FROM arrivals a JOIN event_archive e ON e.tenant = $1 AND e.id = a.id AND e.source = a.source
                UNION ALL
                SELECT c.root, e.id, e.source, e.type, e.subject, e.time, e.archived_at, c.depth + 1
                FROM chain c JOIN event_archive e ON e.causation_id = c.id AND e.tenant = $1
                WHERE c.depth < 16
            )
            SELECT c.root, c.id, c.source, c.type, c.subject, c.archived_at, c.depth,
                   (SELECT archived_at FROM arrivals a WHERE a.id = c.root LIMIT 1) AS root_at,
                   (SELECT (extract(epoch FROM a.archived_at - timestamptz 'epoch') * 1000000)::bigint FROM arrivals a WHERE a.id = c.root LIMIT 1) AS root_micros,
                   (SELECT json_agg(json_build_object('id', d.id, 'state', d.state, 'attempts', d.attempts,
                                                      'last_status', d.last_status, 'delivered_at', d.delivered_at) ORDER BY d.id)::text
                    FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
                    WHERE w.tenant = $1 AND d.event_id = c.id) AS deliveries
            FROM chain c ORDER BY root_at DESC, c.root DESC, c.archived_at, c.depth LIMIT 5000
            """, [tenant, before?.0, before?.1, limit]).map { r in
            ChainStep(root: try r.decode("root"), rootAt: try r.decode("root_at"), rootMicros: try r.decode("root_micros"),
                      id: try r.decode("id"), type: try r.decode("type"), subject: r.text("subject"), archivedAt: try r.decode("archived_at"),
                      deliveries: r.text("deliveries").flatMap { try? JSONValue(parsing: $0) })
        }
    }
}
