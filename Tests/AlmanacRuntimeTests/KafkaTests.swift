import AlmanacCore
import AlmanacKafka
import Foundation
import Testing

/// The Kafka wrapper against librdkafka's mock cluster.
@Suite struct KafkaTests {
    @Test func produceConsumeCommitAndLag() async throws {
        let cluster = try KafkaMockCluster()
        try cluster.createTopic("t", partitions: 3)
        let producer = try KafkaProducer(configuration: cluster.configuration)
        for i in 0..<30 {
            let report = try await producer.send(topic: "t", key: Data("k\(i % 5)".utf8), value: Data("v\(i)".utf8),
                                                 headers: [("h", Data("\(i)".utf8))])
            #expect(report.topic == "t" && report.offset >= 0)
        }
        let admin = try KafkaAdmin(configuration: cluster.configuration)
        #expect(try await admin.partitionCount(topic: "t") == 3)
        #expect(try await admin.lag(group: "g", topic: "t") == 30)

        let consumer = try KafkaConsumer(configuration: cluster.configuration, groupID: "g", topics: ["t"], assignment: .all)
        var seen: [KafkaRecord] = []
        let deadline = ContinuousClock.now + .seconds(20)
        while seen.count < 30 && ContinuousClock.now < deadline {
            seen += try await consumer.poll(max: 100, timeout: .milliseconds(100))
        }
        #expect(seen.count == 30)
        #expect(Set(seen.compactMap { $0.value.map { String(decoding: $0, as: UTF8.self) } }) == Set((0..<30).map { "v\($0)" }))
        #expect(seen.allSatisfy { r in r.headers.first?.0 == "h" })
        // Same key, same partition: order per key is kept.
        let byKey = Dictionary(grouping: seen, by: { $0.key! })
        #expect(byKey.values.allSatisfy { Set($0.map(\.partition)).count == 1 })
        // Commit two thirds; the lag is what is left, read from the broker.
        var positions: [Int32: Int64] = [:]
        for r in seen.prefix(20) { positions[r.partition] = max(positions[r.partition] ?? 0, r.offset + 1) }
        try await consumer.commit(positions.map { KafkaCommitPosition(topic: "t", partition: $0.key, offset: $0.value) })
        let committed = try await admin.committedOffsets(group: "g", topic: "t", partitions: 3)
        #expect(committed == positions)
        let expectedLag = 30 - positions.values.reduce(0, +)
        #expect(try await admin.lag(group: "g", topic: "t") == expectedLag)
        await consumer.close()
        // A new consumer of the group starts where the commits left off.
        let again = try KafkaConsumer(configuration: cluster.configuration, groupID: "g", topics: ["t"], assignment: .all)
        var rest: [KafkaRecord] = []
        let deadline2 = ContinuousClock.now + .seconds(20)
        while rest.count < Int(expectedLag) && ContinuousClock.now < deadline2 {
            rest += try await again.poll(max: 100, timeout: .milliseconds(100))
        }
        #expect(rest.count == Int(expectedLag))
        #expect(rest.allSatisfy { $0.offset >= positions[$0.partition] ?? 0 })
        await again.close()
    }

    @Test func groupMemberKeepsItsPartitionsThroughALongHandler() async throws {
        let cluster = try KafkaMockCluster()
        try cluster.createTopic("long", partitions: 1)
        let producer = try KafkaProducer(configuration: cluster.configuration)
        try await producer.send(topic: "long", key: nil, value: Data("a".utf8))
        try await producer.send(topic: "long", key: nil, value: Data("b".utf8))
        // max.poll.interval.ms is the limit librdkafka enforces between polls: 15 s here, and the
        // "handler" below takes 20 s while polling paused partitions, as the SDK does. (The
        // interval leaves room for this test's own polls to wait while CPU-bound suites beside
        // it hold every thread of the cooperative pool; at 6 s they once did not.)
        let consumer = try KafkaConsumer(configuration: cluster.configuration, groupID: "slow", topics: ["long"], assignment: .group,
                                         extra: ["max.poll.interval.ms": "15000", "session.timeout.ms": "6000"])
        var first: KafkaRecord?
        let deadline = ContinuousClock.now + .seconds(20)
        while first == nil && ContinuousClock.now < deadline { first = try await consumer.poll(timeout: .milliseconds(100)) }
        let record = try #require(first)
        #expect(record.value == Data("a".utf8))
        try await consumer.pause()
        let handlerEnds = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < handlerEnds {
            #expect(try await consumer.poll(timeout: .milliseconds(100)) == nil, "paused: nothing is fetched")
        }
        try await consumer.resume()
        #expect(try await consumer.assignment() == [0], "still a member with its partition")
        try await consumer.commit([KafkaCommitPosition(after: record)])
        var second: KafkaRecord?
        let deadline2 = ContinuousClock.now + .seconds(10)
        while second == nil && ContinuousClock.now < deadline2 { second = try await consumer.poll(timeout: .milliseconds(100)) }
        #expect(second?.value == Data("b".utf8), "the next record follows, none lost or repeated")
        await consumer.close()
    }

    @Test func badPropertiesAreRefusedWithoutShowingSecrets() async throws {
        #expect {
            _ = try KafkaProducer(configuration: KafkaConfiguration(brokers: "127.0.0.1:1", properties: ["batch.num.messages": "many"]))
        } throws: { "\($0)".contains("batch.num.messages=many refused") }
        let redacted = KafkaConfiguration(brokers: "x", properties: ["sasl.password": "hunter2", "bogus.property": "1"])
        #expect { _ = try KafkaProducer(configuration: redacted) } throws: { !"\($0)".contains("hunter2") }
    }
}
