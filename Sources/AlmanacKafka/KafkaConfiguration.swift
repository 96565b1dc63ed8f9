import CRdKafka
import Foundation

/// Where the brokers are and how to reach them: librdkafka properties by name.
public struct KafkaConfiguration: Sendable {
    /// `host:port,host:port`.
    public var brokers: String
    /// Extra librdkafka properties (SASL, TLS, tuning), applied to every client.
    public var properties: [String: String]

    /// Makes a configuration.
    public init(brokers: String, properties: [String: String] = [:]) {
        self.brokers = brokers
        self.properties = properties
    }

    /// Reads `KAFKA_BROKERS` and the security settings `KAFKA_SECURITY_PROTOCOL`,
    /// `KAFKA_SASL_MECHANISM`, `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD` and
    /// `KAFKA_SSL_CA_LOCATION`, plus any `KAFKA_PROPERTY_<name>` (dots written as `_`).
    /// - Returns: nil when `KAFKA_BROKERS` is not set.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) -> KafkaConfiguration? {
        guard let brokers = env["KAFKA_BROKERS"], !brokers.isEmpty else { return nil }
        var props: [String: String] = [:]
        let named = [
            ("KAFKA_SECURITY_PROTOCOL", "security.protocol"), ("KAFKA_SASL_MECHANISM", "sasl.mechanism"),
            ("KAFKA_SASL_USERNAME", "sasl.username"), ("KAFKA_SASL_PASSWORD", "sasl.password"),
            ("KAFKA_SSL_CA_LOCATION", "ssl.ca.location"),
        ]
        for (variable, property) in named { if let v = env[variable], !v.isEmpty { props[property] = v } }
        for (k, v) in env where k.hasPrefix("KAFKA_PROPERTY_") {
            props[k.dropFirst("KAFKA_PROPERTY_".count).lowercased().replacingOccurrences(of: "_", with: ".")] = v
        }
        return KafkaConfiguration(brokers: brokers, properties: props)
    }

    /// Builds an `rd_kafka_conf_t` with these settings and `extra` on top.
    /// - Throws: `KafkaError` naming the property librdkafka refused (values of secret properties are not shown).
    func makeConf(_ extra: [String: String]) throws -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var all = properties
        all["bootstrap.servers"] = brokers
        all["log.connection.close"] = all["log.connection.close"] ?? "false"
        for (k, v) in extra { all[k] = v }
        var errstr = [CChar](repeating: 0, count: 512)
        for (k, v) in all.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(conf, k, v, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                let shown = k.contains("password") || k.contains("secret") ? "***" : v
                throw KafkaError(.configuration, "Kafka property \(k)=\(shown) refused: \(String(cString: errstr))")
            }
        }
        return conf
    }
}

extension KafkaConfiguration {
    /// Creates a client handle from these settings plus `extra`.
    /// - Parameters:
    ///   - prepare: adjusts the `rd_kafka_conf_t` before the client takes it (callbacks, opaque).
    ///   - role: what the client is, for the error message (`a Kafka producer`).
    /// - Throws: `KafkaError.configuration` with librdkafka's reason.
    func makeHandle(_ type: rd_kafka_type_t, _ extra: [String: String], role: String,
                    prepare: (OpaquePointer) -> Void = { _ in }) throws -> OpaquePointer {
        let conf = try makeConf(extra)
        prepare(conf)
        var errstr = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(type, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(.configuration, "cannot create \(role): \(String(cString: errstr))")
        }
        return rk
    }
}

/// A failure from librdkafka or from this wrapper.
public struct KafkaError: Error, CustomStringConvertible, Sendable {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// A property was refused or a client could not be created.
        public static let configuration = Code(name: "configuration")
        /// A produce failed or was not acknowledged.
        public static let produce = Code(name: "produce")
        /// Consuming, committing or pausing failed.
        public static let consume = Code(name: "consume")
        /// A metadata, offset or topic request failed.
        public static let admin = Code(name: "admin")
        /// The client was closed.
        public static let closed = Code(name: "closed")
        /// A printable name.
        public var description: String { name }
    }

    /// The kind of failure.
    public var code: Code
    /// What happened.
    public var message: String
    /// librdkafka's error code, when there is one.
    public var kafkaCode: Int32?
    /// Whether librdkafka says retrying may succeed.
    public var isRetriable: Bool

    /// Makes an error.
    public init(_ code: Code, _ message: String, kafkaCode: Int32? = nil, isRetriable: Bool = false) {
        self.code = code
        self.message = message
        self.kafkaCode = kafkaCode
        self.isRetriable = isRetriable
    }

    init(_ code: Code, _ context: String, _ err: rd_kafka_resp_err_t) {
        let text = String(cString: rd_kafka_err2str(err))
        let retriable = [RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
                         RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                         RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
                         RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN].contains(err)
        self.init(code, "\(context): \(text)", kafkaCode: err.rawValue, isRetriable: retriable)
    }

    /// `kafka <code>: message`.
    public var description: String { "kafka \(code): \(message)" }
}

/// An `rd_kafka_t` pointer that may cross threads: librdkafka documents every
/// `rd_kafka_*` call on a handle as thread-safe.
struct KafkaHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
}

/// The id of the cluster a client is connected to (waiting up to `timeoutMs` for metadata).
/// - Throws: `KafkaError.admin` when no broker answered.
func kafkaClusterID(_ rk: OpaquePointer, timeoutMs: Int32 = 5000) throws -> String {
    guard let id = rd_kafka_clusterid(rk, timeoutMs) else {
        throw KafkaError(.admin, "the cluster id is not known: no broker answered within \(timeoutMs) ms", isRetriable: true)
    }
    defer { rd_kafka_mem_free(rk, id) }
    return String(cString: id)
}
