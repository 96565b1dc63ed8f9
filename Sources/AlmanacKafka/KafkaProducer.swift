import CAlmanacShims
import CRdKafka
import Foundation

/// Where a produced record landed.
public struct KafkaDeliveryReport: Sendable, Equatable {
    /// The topic.
    public var topic: String
    /// The partition.
    public var partition: Int32
    /// The offset the broker gave it.
    public var offset: Int64
}

/// An idempotent producer (`enable.idempotence=true`, `acks=all`) whose sends complete
/// when the broker has acknowledged the record.
///
/// librdkafka documents `rd_kafka_t` as thread-safe, so one producer is shared by every
/// task of a process; a background thread serves its delivery reports.
public final class KafkaProducer: @unchecked Sendable {
    // rd_kafka_t is thread-safe (librdkafka: "all rd_kafka_* API calls are thread safe").
    let handle: OpaquePointer
    private let poller: KafkaPollThread

    /// Creates a producer.
    /// - Parameters:
    ///   - configuration: brokers and properties.
    ///   - lingerMs: how long to wait to fill a batch; small values favour latency.
    public init(configuration: KafkaConfiguration, lingerMs: Int = 0, extra: [String: String] = [:]) throws {
        var props: [String: String] = [
            "enable.idempotence": "true", "acks": "all", "linger.ms": "\(lingerMs)",
            "message.timeout.ms": "30000", "queue.buffering.max.messages": "500000",
        ]
        for (k, v) in extra { props[k] = v }
        let rk = try configuration.makeHandle(RD_KAFKA_PRODUCER, props, role: "a Kafka producer") { conf in
            almanac_kafka_conf_set_dr_cb(conf, kafkaDeliveryReportCallback)
        }
        handle = rk
        let shared = KafkaHandle(rk)
        poller = KafkaPollThread(name: "almanac.kafka.producer") { rd_kafka_poll(shared.pointer, 100) }
    }

    deinit {
        poller.stop()
        rd_kafka_flush(handle, 5000)
        rd_kafka_destroy(handle)
    }

    /// Sends a record and calls `completion` (on librdkafka's delivery thread) when it is acknowledged or fails.
    /// - Important: `completion` must be quick and must not block.
    public func produce(topic: String, key: Data?, value: Data?, headers: [(String, Data)] = [],
                        partition: Int32 = -1, completion: @escaping @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void) {
        let box = Unmanaged.passRetained(DeliveryBox(completion))
        var hdrs: OpaquePointer? = nil
        if !headers.isEmpty {
            hdrs = rd_kafka_headers_new(headers.count)
            for (name, v) in headers {
                v.withUnsafeBytes { raw in
                    _ = rd_kafka_header_add(hdrs, name, -1, raw.baseAddress, raw.count)
                }
            }
        }
        var attempts = 0
        while true {
            let err: rd_kafka_resp_err_t = (key ?? Data()).withUnsafeBytes { k in
                (value ?? Data()).withUnsafeBytes { v in
                    almanac_kafka_produce(handle, topic, partition,
                                          key == nil ? nil : (k.baseAddress ?? UnsafeRawPointer(bitPattern: 1)), k.count,
                                          value == nil ? nil : (v.baseAddress ?? UnsafeRawPointer(bitPattern: 1)), v.count,
                                          hdrs, box.toOpaque())
                }
            }
            if err == RD_KAFKA_RESP_ERR_NO_ERROR { return }
            if err == RD_KAFKA_RESP_ERR__QUEUE_FULL, attempts < 1000 {
                // The local queue is full: let deliveries drain, then try again.
                attempts += 1
                rd_kafka_poll(handle, 10)
                continue
            }
            if let hdrs { rd_kafka_headers_destroy(hdrs) }
            box.release()
            completion(.failure(KafkaError(.produce, "cannot produce to \(topic)", err)))
            return
        }
    }

    /// Sends a record and returns once the broker has acknowledged it.
    @discardableResult
    public func send(topic: String, key: Data?, value: Data?, headers: [(String, Data)] = [], partition: Int32 = -1) async throws -> KafkaDeliveryReport {
        try await withCheckedThrowingContinuation { cont in
            produce(topic: topic, key: key, value: value, headers: headers, partition: partition) { result in
                cont.resume(with: result)
            }
        }
    }

    /// The id of the Kafka cluster this producer writes to.
    public func clusterID() async throws -> String {
        let rk = KafkaHandle(handle)
        return try await withCheckedThrowingContinuation { cont in
            DispatchQueue.global().async { cont.resume(with: Result { try kafkaClusterID(rk.pointer) }) }
        }
    }

    /// Fetches the metadata of topics this producer will write to.
    ///
    /// librdkafka holds a record for a topic it has no metadata for until its broker thread
    /// next wakes, up to a second; warming the topics first keeps the first sends fast.
    public func warm(topics: [String]) async {
        let rk = KafkaHandle(handle)
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                for t in topics {
                    let rkt = rd_kafka_topic_new(rk.pointer, t, nil)
                    var md: UnsafePointer<rd_kafka_metadata>?
                    if rd_kafka_metadata(rk.pointer, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR, let md {
                        rd_kafka_metadata_destroy(md)
                    }
                    rd_kafka_topic_destroy(rkt)
                }
                cont.resume()
            }
        }
    }

    /// Waits until every record sent so far has been acknowledged (or failed).
    public func flush(timeout: Duration = .seconds(10)) async throws {
        let ms = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let rk = KafkaHandle(handle)
        let err = await withCheckedContinuation { cont in
            DispatchQueue.global().async { cont.resume(returning: rd_kafka_flush(rk.pointer, ms)) }
        }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(.produce, "flush", err) }
    }
}

final class DeliveryBox {
    let completion: @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void
    init(_ completion: @escaping @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void) { self.completion = completion }
}

/// librdkafka calls this from `rd_kafka_poll` on the producer's poll thread, once per message.
private let kafkaDeliveryReportCallback: almanac_kafka_dr_cb = { _, message, _ in
    guard let message, let opaque = almanac_kafka_message_private(message) else { return }
    let box = Unmanaged<DeliveryBox>.fromOpaque(opaque).takeRetainedValue()
    let m = message.pointee
    let topic = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "?"
    if m.err == RD_KAFKA_RESP_ERR_NO_ERROR {
        box.completion(.success(KafkaDeliveryReport(topic: topic, partition: m.partition, offset: m.offset)))
    } else {
        box.completion(.failure(KafkaError(.produce, "delivery to \(topic) failed", m.err)))
    }
}

/// A thread that calls a blocking poll function until stopped.
final class KafkaPollThread: @unchecked Sendable {
    // `running` is read by the thread and written by stop(); guarded by `lock`.
    private let lock = NSLock()
    private var running = true
    private let done = DispatchSemaphore(value: 0)

    init(name: String, _ poll: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            while self.isRunning { poll() }
            self.done.signal()
        }
        thread.name = name
        thread.start()
    }

    var isRunning: Bool { lock.lock(); defer { lock.unlock() }; return running }

    func stop() {
        lock.lock()
        let was = running
        running = false
        lock.unlock()
        if was { done.wait() }
    }
}
