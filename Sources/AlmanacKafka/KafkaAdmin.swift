import CRdKafka
import Foundation

/// Metadata, offsets and topics: what the launcher reads lag from and what `up` creates topics with.
///
/// Lag is computed from the broker (high watermark minus the group's committed offset),
/// never from memory, so it survives restarts of the router or launcher.
public final class KafkaAdmin: @unchecked Sendable {
    // rd_kafka_t is thread-safe; `groupHandles` is guarded by `lock`.
    private let configuration: KafkaConfiguration
    private let handle: OpaquePointer
    private let poller: KafkaPollThread
    private let lock = NSLock()
    private var groupHandles: [String: OpaquePointer] = [:]
    private let timeoutMs: Int32 = 5000

    /// Creates an admin client.
    public init(configuration: KafkaConfiguration) throws {
        self.configuration = configuration
        let rk = try configuration.makeHandle(RD_KAFKA_PRODUCER, [:], role: "a Kafka admin client")
        handle = rk
        let shared = KafkaHandle(rk)
        poller = KafkaPollThread(name: "almanac.kafka.admin") { rd_kafka_poll(shared.pointer, 100) }
    }

    deinit {
        poller.stop()
        for (_, h) in groupHandles { rd_kafka_destroy(h) }
        rd_kafka_destroy(handle)
    }

    /// The number of partitions of a topic.
    /// - Throws: `KafkaError.admin` when the topic does not exist or metadata cannot be read.
    public func partitionCount(topic: String) async throws -> Int {
        try await topicMetadata(topic) { Int($0.partition_cnt) }
    }

    /// The fewest replicas any partition of a topic has.
    /// - Throws: `KafkaError.admin` when the topic does not exist, has no partitions, or metadata cannot be read.
    public func replicationFactor(topic: String) async throws -> Int {
        try await topicMetadata(topic) { t in
            guard t.partition_cnt > 0 else { throw KafkaError(.admin, "topic \(topic) has no partitions") }
            return (0..<Int(t.partition_cnt)).map { Int(t.partitions[$0].replica_cnt) }.min() ?? 0
        }
    }

    /// Reads what `read` takes from a topic's metadata.
    private func topicMetadata<T: Sendable>(_ topic: String, _ read: @escaping @Sendable (rd_kafka_metadata_topic) throws -> T) async throws -> T {
        try await blocking { [self] in
            let rkt = rd_kafka_topic_new(handle, topic, nil)
            defer { rd_kafka_topic_destroy(rkt) }
            var md: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(handle, 0, rkt, &md, timeoutMs)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md else { throw KafkaError(.admin, "metadata of \(topic)", err) }
            defer { rd_kafka_metadata_destroy(md) }
            guard md.pointee.topic_cnt > 0 else { throw KafkaError(.admin, "topic \(topic) not found") }
            let t = md.pointee.topics[0]
            if t.err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(.admin, "topic \(topic)", t.err) }
            return try read(t)
        }
    }

    /// One configuration entry of each topic, in one DescribeConfigs request: topic → value,
    /// leaving out topics the broker has no such entry for.
    /// - Throws: `KafkaError.admin` when the broker does not answer (the mock cluster never does) or refuses.
    public func topicConfig(topics: [String], name: String) async throws -> [String: String] {
        try await blocking { [self] in
            var resources: [OpaquePointer?] = []
            defer { resources.forEach { rd_kafka_ConfigResource_destroy($0) } }
            for t in topics {
                guard let r = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, t) else { throw KafkaError(.admin, "DescribeConfigs: cannot describe \(t)") }
                resources.append(r)
            }
            let queue = rd_kafka_queue_new(handle)
            defer { rd_kafka_queue_destroy(queue) }
            resources.withUnsafeMutableBufferPointer { buf in rd_kafka_DescribeConfigs(handle, buf.baseAddress, buf.count, nil, queue) }
            guard let event = rd_kafka_queue_poll(queue, timeoutMs) else {
                throw KafkaError(.admin, "DescribeConfigs got no answer in \(timeoutMs) ms", isRetriable: true)
            }
            defer { rd_kafka_event_destroy(event) }
            if rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(.admin, "DescribeConfigs", rd_kafka_event_error(event))
            }
            guard let result = rd_kafka_event_DescribeConfigs_result(event) else { throw KafkaError(.admin, "DescribeConfigs: unexpected event type") }
            var count = 0
            guard let described = rd_kafka_DescribeConfigs_result_resources(result, &count) else { return [:] }
            var out: [String: String] = [:]
            for i in 0..<count {
                guard let resource = described[i] else { continue }
                let topic = String(cString: rd_kafka_ConfigResource_name(resource))
                let err = rd_kafka_ConfigResource_error(resource)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(.admin, "DescribeConfigs of \(topic)", err) }
                var entries = 0
                guard let configs = rd_kafka_ConfigResource_configs(resource, &entries) else { continue }
                for j in 0..<entries {
                    guard let entry = configs[j], String(cString: rd_kafka_ConfigEntry_name(entry)) == name,
                          let value = rd_kafka_ConfigEntry_value(entry) else { continue }
                    out[topic] = String(cString: value)
                }
            }
            return out
        }
    }

    /// The id of the Kafka cluster.
    public func clusterID() async throws -> String {
        try await blocking { [self] in try kafkaClusterID(handle) }
    }

    /// Whether the broker knows a topic.
    public func topicExists(_ topic: String) async -> Bool {
        (try? await partitionCount(topic: topic)) != nil
    }

    /// The low and high watermark offsets of a partition.
    public func watermarks(topic: String, partition: Int32) async throws -> (low: Int64, high: Int64) {
        try await blocking { [self] in
            var low: Int64 = 0, high: Int64 = 0
            let err = rd_kafka_query_watermark_offsets(handle, topic, partition, &low, &high, timeoutMs)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(.admin, "watermarks of \(topic)[\(partition)]", err) }
            return (low, high)
        }
    }

    /// The committed offsets of a group on a topic's partitions; a partition without a commit is absent.
    public func committedOffsets(group: String, topic: String, partitions: Int) async throws -> [Int32: Int64] {
        let gh = KafkaHandle(try groupHandle(group))
        return try await blocking { [self] in
            let list = rd_kafka_topic_partition_list_new(Int32(partitions))!
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for p in 0..<partitions { rd_kafka_topic_partition_list_add(list, topic, Int32(p)) }
            let err = rd_kafka_committed(gh.pointer, list, self.timeoutMs)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(.admin, "committed offsets of \(group)", err) }
            var out: [Int32: Int64] = [:]
            for i in 0..<Int(list.pointee.cnt) {
                let e = list.pointee.elems[i]
                if e.offset >= 0 { out[e.partition] = e.offset }
            }
            return out
        }
    }

    /// Records in `topic` not yet handled by `group`, over all partitions: high watermark minus
    /// the position.
    /// - Parameter positions: positions the caller keeps itself (Almanac keeps them in Postgres
    ///   with each function's effects); where they cover every partition the group's committed
    ///   offsets are not fetched, otherwise the later of the two counts. A partition with no
    ///   position counts from its low watermark, and so does one whose position is past its
    ///   high watermark (the topic was recreated).
    public func lag(group: String, topic: String, positions: [Int32: Int64] = [:]) async throws -> Int64 {
        let n = try await partitionCount(topic: topic)
        let covered = (0..<n).allSatisfy { positions[Int32($0)] != nil }
        let committed = covered ? [:] : try await committedOffsets(group: group, topic: topic, partitions: n)
        var total: Int64 = 0
        for p in 0..<Int32(n) {
            let (low, high) = try await watermarks(topic: topic, partition: p)
            var position = max(positions[p] ?? -1, committed[p] ?? -1)
            if position > high || position < low { position = low }
            total += max(0, high - position)
        }
        return total
    }

    /// Creates topics through the Admin API (real Kafka); existing topics are left alone.
    /// - Important: librdkafka's mock cluster does not answer CreateTopics: use `KafkaMockCluster.createTopic`.
    public func createTopics(_ names: [String], partitions: Int, replicationFactor: Int = -1) async throws {
        try await blocking { [self] in
            var errstr = [CChar](repeating: 0, count: 512)
            var specs: [OpaquePointer?] = []
            defer { specs.forEach { rd_kafka_NewTopic_destroy($0) } }
            for name in names {
                guard let spec = rd_kafka_NewTopic_new(name, Int32(partitions), Int32(replicationFactor), &errstr, errstr.count) else {
                    throw KafkaError(.admin, "topic \(name): \(String(cString: errstr))")
                }
                specs.append(spec)
            }
            let queue = rd_kafka_queue_new(handle)
            defer { rd_kafka_queue_destroy(queue) }
            specs.withUnsafeMutableBufferPointer { buf in
                rd_kafka_CreateTopics(handle, buf.baseAddress, buf.count, nil, queue)
            }
            guard let event = rd_kafka_queue_poll(queue, timeoutMs * 2) else {
                throw KafkaError(.admin, "CreateTopics got no answer in \(timeoutMs * 2) ms", isRetriable: true)
            }
            defer { rd_kafka_event_destroy(event) }
            guard let result = rd_kafka_event_CreateTopics_result(event) else {
                throw KafkaError(.admin, "CreateTopics: unexpected event type")
            }
            var count = 0
            let topics = rd_kafka_CreateTopics_result_topics(result, &count)
            for i in 0..<count {
                let t = topics![i]
                let err = rd_kafka_topic_result_error(t)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                    throw KafkaError(.admin, "create topic \(String(cString: rd_kafka_topic_result_name(t)))", err)
                }
            }
        }
    }

    private func groupHandle(_ group: String) throws -> OpaquePointer {
        lock.lock()
        defer { lock.unlock() }
        if let h = groupHandles[group] { return h }
        // A consumer handle that never subscribes: it only asks the coordinator for the group's offsets.
        let h = try configuration.makeHandle(RD_KAFKA_CONSUMER, ["group.id": group, "enable.auto.commit": "false"],
                                             role: "an offsets client for \(group)")
        groupHandles[group] = h
        return h
    }

    private func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { cont in
            DispatchQueue.global().async { cont.resume(with: Result { try work() }) }
        }
    }
}

/// librdkafka's mock cluster: a real Kafka protocol server on loopback, held in memory by this process.
///
/// - Important: what it holds is gone when the process that created it ends.
public final class KafkaMockCluster: @unchecked Sendable {
    // The mock cluster has its own thread; its API is thread-safe.
    private let owner: OpaquePointer
    private let cluster: OpaquePointer
    /// The bootstrap servers (`127.0.0.1:port,…`) clients connect to.
    public let bootstrapServers: String

    /// Starts a mock cluster.
    /// - Parameter brokers: how many brokers it simulates.
    public init(brokers: Int = 1) throws {
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        rd_kafka_conf_set(conf, "log_level", "3", &errstr, errstr.count)
        guard let rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(.configuration, "cannot create the mock cluster's client: \(String(cString: errstr))")
        }
        guard let mc = rd_kafka_mock_cluster_new(rk, Int32(brokers)) else {
            rd_kafka_destroy(rk)
            throw KafkaError(.configuration, "cannot start librdkafka's mock cluster")
        }
        owner = rk
        cluster = mc
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(mc))
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(owner)
    }

    /// Creates a topic (an existing one is left as it is).
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws {
        let err = rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replicationFactor))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
            throw KafkaError(.admin, "mock topic \(name)", err)
        }
    }

    /// A configuration pointing at this cluster.
    public var configuration: KafkaConfiguration { KafkaConfiguration(brokers: bootstrapServers) }
}
