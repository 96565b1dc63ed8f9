import CRdKafka
import Foundation

/// How durably a topic keeps what is written to it: its replication factor (the fewest
/// replicas any partition has, from metadata) and `min.insync.replicas` (from the broker's
/// topic configuration; nil where the broker did not say — librdkafka's mock cluster does not
/// answer DescribeConfigs).
public struct TopicDurability: Sendable, Equatable {
    /// The topic.
    public var topic: String
    /// The fewest replicas of any of its partitions.
    public var replicationFactor: Int
    /// Replicas that must have a write before it is acknowledged (with acks=all), if known.
    public var minInsyncReplicas: Int?

    /// Makes a description.
    public init(topic: String, replicationFactor: Int, minInsyncReplicas: Int?) {
        (self.topic, self.replicationFactor, self.minInsyncReplicas) = (topic, replicationFactor, minInsyncReplicas)
    }

    /// What is wrong with the topics for an installation that requires `replication` replicas
    /// (`ALMANAC_KAFKA_REPLICATION`): failures that must stop a start, and warnings.
    ///
    /// A topic needs at least `replication` replicas; with three or more, `min.insync.replicas`
    /// must be at least 2 (otherwise an acknowledged event may live on one broker only) and
    /// below the replication factor (otherwise one broker down stops every write).
    public static func check(_ topics: [TopicDurability], replication: Int) -> (failures: [String], warnings: [String]) {
        var failures: [String] = [], warnings: [String] = []
        for t in topics {
            if t.replicationFactor < replication {
                failures.append("topic \(t.topic) has replication factor \(t.replicationFactor); this installation requires \(replication) "
                                + "(ALMANAC_KAFKA_REPLICATION): recreate it with more replicas or reassign its partitions")
            }
            guard replication >= 3 else { continue }
            guard let isr = t.minInsyncReplicas else {
                warnings.append("topic \(t.topic): the broker did not say its min.insync.replicas; check it is at least 2")
                continue
            }
            if isr < 2 {
                failures.append("topic \(t.topic) has min.insync.replicas \(isr): an acknowledged event could live on one broker only; set it to 2 or more")
            } else if isr >= t.replicationFactor {
                failures.append("topic \(t.topic) has min.insync.replicas \(isr) with \(t.replicationFactor) replicas: one broker down would stop every write; "
                                + "set it below the replication factor")
            }
        }
        return (failures, warnings)
    }
}

extension KafkaAdmin {
    /// The replication factor and `min.insync.replicas` of each topic (the latter asked for
    /// all of them in one request, and nil where the broker did not answer it).
    /// - Throws: `KafkaError.admin` when a topic does not exist or metadata cannot be read.
    public func durability(topics: [String]) async throws -> [TopicDurability] {
        var replicas: [Int] = []
        for t in topics { replicas.append(try await replicationFactor(topic: t)) }
        let isr = (try? await topicConfig(topics: topics, name: "min.insync.replicas")) ?? [:]
        return zip(topics, replicas).map { TopicDurability(topic: $0, replicationFactor: $1, minInsyncReplicas: isr[$0].flatMap { Int($0) }) }
    }
}

extension KafkaAdmin {
    /// Reads every topic's durability and checks it against `replication` replicas.
    /// - Returns: the warnings (a broker that would not say its `min.insync.replicas`).
    /// - Throws: `KafkaError.configuration` listing every failure, so that nothing starts on
    ///   topics that could lose acknowledged events.
    public func requireDurability(topics: [String], replication: Int) async throws -> [String] {
        let (failures, warnings) = TopicDurability.check(try await durability(topics: topics), replication: replication)
        if !failures.isEmpty { throw KafkaError(.configuration, failures.joined(separator: "; ")) }
        return warnings
    }

    /// The replicas `ALMANAC_KAFKA_REPLICATION` requires of every topic, if it is set.
    /// - Throws: `KafkaError.configuration` when it is not a whole number from 1 to 100.
    public static func requiredReplication(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> Int? {
        guard let text = env["ALMANAC_KAFKA_REPLICATION"], !text.isEmpty else { return nil }
        guard let n = Int(text), (1...100).contains(n) else {
            throw KafkaError(.configuration, "ALMANAC_KAFKA_REPLICATION must be a whole number from 1 to 100, got \(text)")
        }
        return n
    }
}
