import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import Foundation
import Logging

/// Events waiting in Postgres to be produced to the bus.
///
/// A function's emitted events are inserted in the same transaction as its effects and its
/// processed mark; `relay` then produces them and marks them sent. Events keep their ids,
/// so a relay repeated after a crash produces duplicates that consumers skip by id.
public enum Outbox {
    /// The bus every emitted event goes to.
    public static let busTopic = "almanac.events"

    /// Adds events to the outbox inside the caller's transaction.
    public static func enqueue(_ events: [CloudEvent], function: String, topic: String = busTopic, in tx: PostgresTransaction) async throws {
        guard !events.isEmpty else { return }
        try await tx.exec("""
            INSERT INTO outbox (event_id, function, tenant, topic, event)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[])
            ON CONFLICT (event_id) DO NOTHING
            """, [events.map(\.id), events.map { _ in function }, events.map(\.tenant), events.map { _ in topic },
                  events.map { $0.structuredJSON().serialized() }])
    }

    /// Adds an event to publish no earlier than `date` (inside the caller's transaction); the
    /// control plane's scheduler relays it when it is due.
    public static func schedule(_ event: CloudEvent, at date: Date, function: String, in tx: PostgresTransaction) async throws {
        try await tx.exec("""
            INSERT INTO outbox (event_id, function, tenant, topic, event, publish_after) VALUES ($1, $2, $3, $4, $5::jsonb, $6)
            ON CONFLICT (event_id) DO NOTHING
            """, [event.id, function, event.tenant, busTopic, event.structuredJSON().serialized(), date])
    }

    /// Produces every unsent event of `function` (all functions when nil) that is due, oldest
    /// first, waits for Kafka's acknowledgements, then marks them sent.
    /// - Parameter scheduledOnly: relay only events scheduled for later that are now due (the scheduler's share).
    /// - Returns: how many were relayed.
    @discardableResult
    public static func relay(function: String?, scheduledOnly: Bool = false, db: PostgresConnection, producer: KafkaProducer, logger: Logger,
                             limit: Int = 1000) async throws -> Int {
        let rows = try await db.query("""
            SELECT seq, topic, event::text AS event FROM outbox
            WHERE sent_at IS NULL AND ($1::text IS NULL OR function = $1)
              AND (publish_after IS NULL OR publish_after <= now()) AND (NOT $3 OR publish_after IS NOT NULL)
            ORDER BY seq LIMIT $2
            """, [function, limit, scheduledOnly])
        guard !rows.isEmpty else { return 0 }
        var sent: [Int64] = []
        for row in rows {
            let seq = try row.decode("seq", as: Int64.self)
            let topic = try row.decode("topic", as: String.self)
            let event = try CloudEvent(structured: Data(try row.decode("event", as: String.self).utf8))
            let record = event.kafkaBinary()
            try await producer.send(topic: topic, key: record.key, value: record.value, headers: record.headers)
            sent.append(seq)
        }
        try await db.exec("UPDATE outbox SET sent_at = now() WHERE seq = ANY($1::bigint[])", [sent])
        logger.debug("relayed outbox", metadata: ["count": "\(sent.count)"])
        return sent.count
    }
}
