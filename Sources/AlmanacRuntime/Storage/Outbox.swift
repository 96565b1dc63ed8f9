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

    /// Produces every unsent event of `function` (all functions when nil), oldest first,
    /// waits for Kafka's acknowledgements, then marks them sent.
    /// - Returns: how many were relayed.
    @discardableResult
    public static func relay(function: String?, db: PostgresConnection, producer: KafkaProducer, logger: Logger, limit: Int = 1000) async throws -> Int {
        let rows = try await db.query("""
            SELECT seq, topic, event::text AS event FROM outbox
            WHERE sent_at IS NULL AND ($1::text IS NULL OR function = $1)
            ORDER BY seq LIMIT $2
            """, [function, limit])
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

/// Where each function has got to in its input topic, kept in Postgres with its effects.
///
/// Positions are per Kafka cluster: offsets of one cluster mean nothing in another (the
/// embedded mock broker is a new cluster each time it starts).
public enum ConsumerPositions {
    /// Records that everything up to and including `record` is done, in the caller's transaction.
    public static func advance(function: String, cluster: String, past record: KafkaRecord, in db: any PostgresExecutor) async throws {
        try await db.exec("""
            INSERT INTO consumer_positions (cluster_id, function, topic, partition, next_offset) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (cluster_id, function, topic, partition)
            DO UPDATE SET next_offset = greatest(consumer_positions.next_offset, EXCLUDED.next_offset), updated_at = now()
            """, [cluster, function, record.topic, Int(record.partition), record.offset + 1])
    }

    /// The next offset to read per partition, for functions of one cluster.
    public static func load(cluster: String, topics: [String], in db: any PostgresExecutor) async throws -> [String: [Int32: Int64]] {
        var out: [String: [Int32: Int64]] = [:]
        for row in try await db.query("""
            SELECT function, partition, next_offset FROM consumer_positions WHERE cluster_id = $1 AND topic = ANY($2::text[])
            """, [cluster, topics]) {
            out[try row.decode("function", as: String.self), default: [:]][try row.decode("partition", as: Int32.self)] =
                try row.decode("next_offset", as: Int64.self)
        }
        return out
    }

    /// Keeps only positions the topic can hold: a position past a partition's high watermark
    /// means the topic was recreated, and reading must start over there.
    public static func plausible(_ positions: [Int32: Int64], topic: String, admin: KafkaAdmin) async -> [Int32: Int64] {
        var out: [Int32: Int64] = [:]
        for (partition, offset) in positions {
            if let marks = try? await admin.watermarks(topic: topic, partition: partition), offset <= marks.high {
                out[partition] = offset
            }
        }
        return out
    }
}
