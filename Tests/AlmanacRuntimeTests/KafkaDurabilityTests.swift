import AlmanacKafka
import Foundation
import Testing

/// Topics that must keep what they acknowledge: the rules, the broker's answers, and
/// `almanac setup` refusing to go on over topics that would not.
@Suite struct KafkaDurabilityTests {
    typealias D = TopicDurability

    @Test(arguments: [
        // (replicas, min.insync.replicas, required) → failures
        (3, 2, 3, 0), (5, 3, 3, 0), (1, nil, 1, 0), (2, nil, 2, 0),
        (1, 1, 3, 2),     // too few replicas; and an ISR of 1
        (3, 1, 3, 1),     // an acknowledged event on one broker
        (3, 3, 3, 1),     // one broker down stops every write
        (2, 2, 3, 2),     // too few replicas; ISR equal to them
    ] as [(Int, Int?, Int, Int)])
    func theRules(replicas: Int, isr: Int?, required: Int, failures: Int) {
        let (f, _) = D.check([D(topic: "t", replicationFactor: replicas, minInsyncReplicas: isr)], replication: required)
        #expect(f.count == failures, "\(f)")
    }

    @Test func anUnknownISRIsAWarningNotAFailure() {
        let (f, w) = D.check([D(topic: "t", replicationFactor: 3, minInsyncReplicas: nil)], replication: 3)
        #expect(f.isEmpty && w.count == 1 && w[0].contains("min.insync.replicas"))
        #expect(D.check([D(topic: "t", replicationFactor: 1, minInsyncReplicas: nil)], replication: 3).failures[0]
                    .contains("topic t has replication factor 1; this installation requires 3"))
    }

    @Test func theBrokerSaysHowManyReplicasATopicHas() async throws {
        // librdkafka 2.0.2's mock gives every partition as many replicas as it has brokers (up to
        // three), whatever the topic asked for: one cluster of one broker, one of three.
        let single = try KafkaMockCluster(brokers: 1), triple = try KafkaMockCluster(brokers: 3)
        try single.createTopic("thin", partitions: 2, replicationFactor: 1)
        try triple.createTopic("thick", partitions: 2, replicationFactor: 3)
        let thin = try KafkaAdmin(configuration: single.configuration), thick = try KafkaAdmin(configuration: triple.configuration)
        #expect(try await thin.durability(topics: ["thin"]).first?.replicationFactor == 1)
        #expect(try await thick.durability(topics: ["thick"]).first?.replicationFactor == 3)
        await #expect(throws: KafkaError.self) { try await thin.requireDurability(topics: ["thin"], replication: 3) }
        #expect(try await thick.requireDurability(topics: ["thick"], replication: 2).isEmpty)
        // The mock does not answer DescribeConfigs: with three required, that is a warning.
        #expect(try await thick.requireDurability(topics: ["thick"], replication: 3).count == 1)
        #expect(try KafkaAdmin.requiredReplication(["ALMANAC_KAFKA_REPLICATION": "3"]) == 3)
        #expect(try KafkaAdmin.requiredReplication([:]) == nil)
        #expect(throws: KafkaError.self) { try KafkaAdmin.requiredReplication(["ALMANAC_KAFKA_REPLICATION": "many"]) }
    }
}

/// `almanac setup`: the schema and topics an installation needs, and the durability check.
@Suite(.serialized) struct SetupCommandTests {
    @Test func setupRefusesTopicsThatCouldLoseEvents() async throws {
        let d = try await TestDeployment(functions: [TestFunction(name: "one", subscribe: "test.one")])
        let args = ["setup", "--functions", "\(d.directory)/functions"]
        let ok = try await d.almanac(args, environment: ["ALMANAC_KAFKA_REPLICATION": "1"])
        #expect(ok.status == 0, "\(ok.output)")
        #expect(ok.output.contains("schema up to date") && ok.output.contains("every topic has at least 1 replicas"))
        // The mock's topics have one replica each: an installation that requires three stops here.
        let refused = try await d.almanac(args, environment: ["ALMANAC_KAFKA_REPLICATION": "3"])
        #expect(refused.status != 0)
        #expect(refused.output.contains("topic almanac.events has replication factor 1; this installation requires 3"), "\(refused.output)")
        await d.shutdown()
    }
}
