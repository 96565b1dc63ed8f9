import AlmanacCore
import AlmanacPostgres
import Foundation

/// The ids of events each function has finished with (`processed_events`): marked in the
/// transaction that commits an event's effects, or dead-letters it, so a redelivery is skipped.
/// An event is keyed by its tenant, source and id.
public enum ProcessedEvents {
    /// How an event was finished.
    public enum Outcome: String, Sendable {
        /// Its effects committed.
        case succeeded
        /// It went to the dead letters.
        case deadLettered = "dead_lettered"
    }

    /// Marks the event finished by `function`, unless it already was.
    /// - Returns: false when another instance had marked it first.
    @discardableResult
    public static func mark(_ event: CloudEvent, function: String, outcome: Outcome, in tx: any PostgresExecutor) async throws -> Bool {
        try await tx.exec("""
            INSERT INTO processed_events (function, event_id, tenant, source, outcome) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT DO NOTHING
            """, [function, event.id, event.tenant, event.source, outcome.rawValue]) > 0
    }

    /// Which of `events` each function has finished: the set of (function, event key) pairs.
    public static func finished(_ events: [CloudEvent], in db: PostgresConnection) async throws -> Set<FinishedKey> {
        let rows = try await db.query("""
            SELECT p.function, p.tenant, p.source, p.event_id FROM processed_events p
            JOIN unnest($1::text[], $2::text[], $3::text[]) AS e(tenant, source, id)
              ON p.tenant = e.tenant AND p.source = e.source AND p.event_id = e.id
            """, [events.map(\.tenant), events.map(\.source), events.map(\.id)])
        return Set(try rows.map { r in
            FinishedKey(function: try r.decode("function"), tenant: try r.decode("tenant"), source: try r.decode("source"), id: try r.decode("event_id"))
        })
    }

    /// A function and an event it finished.
    public struct FinishedKey: Hashable, Sendable {
        /// The function.
        public var function: String
        /// The event's tenant.
        public var tenant: String
        /// The event's source.
        public var source: String
        /// The event's id.
        public var id: String

        /// The key of `event` for `function`.
        public init(function: String, event: CloudEvent) {
            self.init(function: function, tenant: event.tenant, source: event.source, id: event.id)
        }

        /// Makes a key.
        public init(function: String, tenant: String, source: String, id: String) {
            self.function = function
            self.tenant = tenant
            self.source = source
            self.id = id
        }
    }
}
