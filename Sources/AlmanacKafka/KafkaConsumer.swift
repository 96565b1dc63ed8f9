import AlmanacCore
import CRdKafka
import Foundation

/// One consumed Kafka record.
public struct KafkaRecord: Sendable {
    /// The topic.
    public var topic: String
    /// The partition.
    public var partition: Int32
    /// The offset.
    public var offset: Int64
    /// The key, when there is one.
    public var key: Data?
    /// The value, when there is one.
    public var value: Data?
    /// Headers in order.
    public var headers: [(String, Data)]
    /// The record timestamp (producer create time or broker append time).
    public var timestamp: Date?

    /// The record as the event bindings read it.
    public var eventRecord: KafkaEventRecord { KafkaEventRecord(key: key, value: value, headers: headers) }
}

/// A position to commit: the next offset to read in a partition.
public struct KafkaCommitPosition: Sendable, Hashable {
    /// The topic.
    public var topic: String
    /// The partition.
    public var partition: Int32
    /// The offset of the next record to consume (last processed + 1).
    public var offset: Int64

    /// Makes a position.
    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    /// The position after a record.
    public init(after record: KafkaRecord) {
        self.init(topic: record.topic, partition: record.partition, offset: record.offset + 1)
    }
}

/// A group consumer with manual commits.
///
/// Offsets are committed only by `commit`; nothing is committed automatically. While a
/// long handler runs, `pause()` stops fetching and the caller keeps calling `poll`, which
/// then returns nothing but keeps the group membership alive (librdkafka evicts a member
/// that stops polling for `max.poll.interval.ms`). Partitions assigned while paused are
/// paused too.
public final class KafkaConsumer: @unchecked Sendable {
    // rd_kafka_t is thread-safe; blocking calls run off the cooperative pool: polls on
    // `queue`, and commits, pauses and assignment reads on `controlQueue`, so they never
    // wait behind a poll that is blocking for its timeout.
    let handle: OpaquePointer
    private let queue: DispatchQueue
    private let controlQueue: DispatchQueue
    private let state: ConsumerState
    private var closed = false
    /// The consumer group.
    public let groupID: String

    /// How partitions reach this consumer.
    public enum Assignment: Sendable {
        /// Join the group and let it balance partitions among members (several instances;
        /// a first join waits for the broker's initial rebalance delay, 3 s by default).
        case group
        /// Take every partition of the topics at once, without joining (one instance at a
        /// time). Offsets are still read from and committed to the group.
        case all
        /// Take every partition at once, starting where `positions` says (topic → partition →
        /// next offset); partitions not named start at the beginning. No offset is fetched
        /// from the group coordinator, which saves a start about 100 ms.
        /// - Important: only for callers whose positions cover everything they ever finished.
        case allFrom(positions: [String: [Int32: Int64]])
    }

    /// Creates a consumer of the group's committed positions.
    /// - Parameters:
    ///   - groupID: the group (`almanac.fn.<name>` for a function, `almanac.router` for the router).
    ///   - topics: the topics to consume.
    ///   - assignment: group membership, or every partition without joining.
    ///   - extra: librdkafka properties on top of the defaults.
    public init(configuration: KafkaConfiguration, groupID: String, topics: [String], assignment: Assignment = .group,
                extra: [String: String] = [:]) throws {
        var props: [String: String] = [
            "group.id": groupID, "enable.auto.commit": "false", "enable.auto.offset.store": "false",
            "auto.offset.reset": "earliest", "enable.partition.eof": "false",
            "session.timeout.ms": "6000", "heartbeat.interval.ms": "500",
            "fetch.wait.max.ms": "1", "fetch.error.backoff.ms": "10",
            "topic.metadata.refresh.interval.ms": "5000",
        ]
        for (k, v) in extra { props[k] = v }
        let state = ConsumerState()
        self.state = state
        let rk = try configuration.makeHandle(RD_KAFKA_CONSUMER, props, role: "a Kafka consumer for group \(groupID)") { conf in
            rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(state).toOpaque())
            rd_kafka_conf_set_rebalance_cb(conf, kafkaRebalanceCallback)
        }
        handle = rk
        self.groupID = groupID
        queue = DispatchQueue(label: "almanac.kafka.consumer.\(groupID)")
        controlQueue = DispatchQueue(label: "almanac.kafka.consumer.control.\(groupID)")
        rd_kafka_poll_set_consumer(rk)
        switch assignment {
        case .group:
            let list = rd_kafka_topic_partition_list_new(Int32(topics.count))
            for t in topics { rd_kafka_topic_partition_list_add(list, t, RD_KAFKA_PARTITION_UA) }
            let err = rd_kafka_subscribe(rk, list)
            rd_kafka_topic_partition_list_destroy(list)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                rd_kafka_destroy(rk)
                throw KafkaError(.consume, "cannot subscribe group \(groupID) to \(topics)", err)
            }
        case .all, .allFrom:
            var positions: [String: [Int32: Int64]]?
            if case .allFrom(let p) = assignment { positions = p }
            do { try KafkaConsumer.assignAll(rk, topics: topics, positions: positions) } catch {
                rd_kafka_destroy(rk)
                throw error
            }
        }
    }

    /// Assigns every partition of the topics: at the given positions (the beginning where none
    /// is given), or at the group's committed offsets when `positions` is nil.
    static func assignAll(_ rk: OpaquePointer, topics: [String], positions: [String: [Int32: Int64]]?) throws {
        let list = rd_kafka_topic_partition_list_new(8)!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for t in topics {
            let rkt = rd_kafka_topic_new(rk, t, nil)
            defer { rd_kafka_topic_destroy(rkt) }
            var md: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(rk, 0, rkt, &md, 10_000)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md, md.pointee.topic_cnt > 0,
                  md.pointee.topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                if let md { rd_kafka_metadata_destroy(md) }
                throw KafkaError(.consume, "cannot read the partitions of \(t) (does the topic exist?)", err)
            }
            for p in 0..<Int(md.pointee.topics[0].partition_cnt) {
                let start = positions.map { $0[t]?[Int32(p)] ?? Int64(RD_KAFKA_OFFSET_BEGINNING) } ?? Int64(RD_KAFKA_OFFSET_STORED)
                rd_kafka_topic_partition_list_add(list, t, Int32(p)).pointee.offset = start
            }
            rd_kafka_metadata_destroy(md)
        }
        let err = rd_kafka_assign(rk, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(.consume, "cannot assign \(topics)", err) }
    }

    deinit {
        if !closed {
            rd_kafka_consumer_close(handle)
            rd_kafka_destroy(handle)
        }
    }

    /// Waits up to `timeout` for the next record.
    /// - Returns: nil when none arrived (or the consumer is paused).
    /// - Throws: `KafkaError` for errors the broker or client reports on the consumer.
    public func poll(timeout: Duration = .milliseconds(100)) async throws -> KafkaRecord? {
        try await poll(max: 1, timeout: timeout).first
    }

    /// Waits up to `timeout` for the first record, then takes whatever else is ready, up to `max`.
    public func poll(max: Int, timeout: Duration) async throws -> [KafkaRecord] {
        let ms = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        return try await onQueue { [self] in
            var out: [KafkaRecord] = []
            var wait = ms
            while out.count < max {
                guard let msg = rd_kafka_consumer_poll(handle, wait) else { break }
                defer { rd_kafka_message_destroy(msg) }
                let m = msg.pointee
                if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { continue }
                    let text = String(cString: rd_kafka_err2str(m.err))
                    // Transport hiccups are reported and retried by librdkafka itself.
                    if out.isEmpty, m.err != RD_KAFKA_RESP_ERR__TRANSPORT, m.err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN {
                        throw KafkaError(.consume, "consumer error: \(text)", kafkaCode: m.err.rawValue)
                    }
                    break
                }
                out.append(KafkaConsumer.record(from: msg))
                wait = 0
            }
            return out
        }
    }

    static func record(from msg: UnsafeMutablePointer<rd_kafka_message_t>) -> KafkaRecord {
        let m = msg.pointee
        let topic = String(cString: rd_kafka_topic_name(m.rkt))
        let key = m.key.map { Data(bytes: $0, count: m.key_len) }
        let value = m.payload.map { Data(bytes: $0, count: m.len) }
        var headers: [(String, Data)] = []
        var hdrs: OpaquePointer?
        if rd_kafka_message_headers(msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
            var i = 0
            var name: UnsafePointer<CChar>?
            var val: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                headers.append((String(cString: name!), val.map { Data(bytes: $0, count: size) } ?? Data()))
                i += 1
            }
        }
        var tstype = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let ts = rd_kafka_message_timestamp(msg, &tstype)
        return KafkaRecord(topic: topic, partition: m.partition, offset: m.offset, key: key, value: value,
                           headers: headers, timestamp: ts >= 0 ? Date(timeIntervalSince1970: Double(ts) / 1000) : nil)
    }

    /// Commits positions synchronously; returns once the group coordinator has stored them.
    public func commit(_ positions: [KafkaCommitPosition]) async throws {
        try await commit(positions, waiting: true)
    }

    /// Commits positions; with `waiting: false` the commit is only queued (a failure then
    /// shows as a redelivery, so use it only where redelivered records are skipped).
    public func commit(_ positions: [KafkaCommitPosition], waiting: Bool) async throws {
        guard !positions.isEmpty else { return }
        try await onQueue(control: true) { [self] in
            let list = rd_kafka_topic_partition_list_new(Int32(positions.count))!
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for p in positions {
                let entry = rd_kafka_topic_partition_list_add(list, p.topic, p.partition)!
                entry.pointee.offset = p.offset
            }
            let err = rd_kafka_commit(handle, list, waiting ? 0 : 1)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET {
                throw KafkaError(.consume, "commit for group \(self.groupID)", err)
            }
        }
    }

    /// Stops fetching from every assigned partition (and from partitions assigned later) until `resume()`.
    public func pause() async throws {
        state.setPaused(true)
        try await onQueue(control: true) { [self] in try KafkaConsumer.applyPause(handle, paused: true) }
    }

    /// Fetches again, from the position after the last record `poll` returned.
    public func resume() async throws {
        state.setPaused(false)
        try await onQueue(control: true) { [self] in try KafkaConsumer.applyPause(handle, paused: false) }
    }

    static func applyPause(_ handle: OpaquePointer, paused: Bool) throws {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        let err = rd_kafka_assignment(handle, &list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let list else {
            throw KafkaError(.consume, "cannot read the assignment", err)
        }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        if list.pointee.cnt == 0 { return }
        let e = paused ? rd_kafka_pause_partitions(handle, list) : rd_kafka_resume_partitions(handle, list)
        if e != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(.consume, paused ? "pause" : "resume", e) }
    }

    /// The partitions assigned to this member now.
    public func assignment() async throws -> [Int32] {
        try await onQueue(control: true) { [self] in
            var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
            let err = rd_kafka_assignment(handle, &list)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { throw KafkaError(.consume, "assignment", err) }
            defer { rd_kafka_topic_partition_list_destroy(list) }
            return (0..<Int(list.pointee.cnt)).map { list.pointee.elems[$0].partition }
        }
    }

    /// Leaves the group (so its partitions move at once) and frees the client.
    public func close() async {
        _ = try? await onQueue { [self] in
            if !closed {
                rd_kafka_consumer_close(handle)
                rd_kafka_destroy(handle)
                closed = true
            }
        }
    }

    private func onQueue<T: Sendable>(control: Bool = false, _ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { cont in
            (control ? controlQueue : queue).async {
                if self.closed {
                    cont.resume(throwing: KafkaError(.closed, "consumer of group \(self.groupID) is closed"))
                    return
                }
                cont.resume(with: Result { try work() })
            }
        }
    }
}

/// State the rebalance callback reads; set from the consumer's methods.
final class ConsumerState: @unchecked Sendable {
    // Guarded by `lock`: written by pause()/resume(), read on librdkafka's poll thread.
    private let lock = NSLock()
    private var paused = false
    func setPaused(_ value: Bool) { lock.lock(); paused = value; lock.unlock() }
    var isPaused: Bool { lock.lock(); defer { lock.unlock() }; return paused }
}

/// Assigns (or revokes) partitions on a rebalance, pausing new ones while the consumer is paused.
private let kafkaRebalanceCallback: @convention(c) (
    OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?
) -> Void = { rk, err, partitions, opaque in
    guard let rk else { return }
    let cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
    if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
        if cooperative { _ = rd_kafka_incremental_assign(rk, partitions) } else { rd_kafka_assign(rk, partitions) }
        if let opaque, Unmanaged<ConsumerState>.fromOpaque(opaque).takeUnretainedValue().isPaused, let partitions {
            rd_kafka_pause_partitions(rk, partitions)
        }
    } else {
        if cooperative { _ = rd_kafka_incremental_unassign(rk, partitions) } else { rd_kafka_assign(rk, nil) }
    }
}
