import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import Foundation

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
}
