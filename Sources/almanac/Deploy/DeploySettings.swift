import AlmanacCore
import Foundation
import Yams

/// The small settings file `almanac deploy kubernetes` renders with: where the image is,
/// which secrets hold the Kafka and Postgres credentials (by name: their values are never
/// read), how topics are made, and where GPU work runs. Every field but `image` has a default.
///
/// ```yaml
/// namespace: almanac
/// image: registry.example.com/almanac:1.0.0
/// kafka:
///   brokers: kafka-0.kafka:9093,kafka-1.kafka:9093
///   securityProtocol: SASL_SSL        # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
///   saslMechanism: SCRAM-SHA-512      # with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
///   secret: almanac-kafka             # keys: username, password, ca.crt (and sasl, tls for KEDA)
///   partitions: 12
///   replicationFactor: 3
///   lagThreshold: 5
/// postgres: { secret: almanac-postgres }   # key: url
/// ```
struct DeploySettings {
    var namespace = "almanac"
    var image = ""
    var imagePullPolicy = "IfNotPresent"
    var kafkaBrokers = ""
    var kafkaSecurityProtocol = "PLAINTEXT"
    var kafkaSASLMechanism: String?
    var kafkaSecret = "almanac-kafka"
    var partitions = 12
    var replicationFactor = 3
    var lagThreshold = 5
    var postgresSecret = "almanac-postgres"
    var routerReplicas = 2
    var ingressReplicas = 2
    var ingressPort = 8787
    var gpuNodeSelector: [String: String] = ["nvidia.com/gpu.present": "true"]
    var gpuTolerations: [JSONValue] = [["key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"]]
    /// How `gpu: preferred` functions run: `job` (a ScaledJob on GPU nodes, like `required`) or `cpu` (a Deployment).
    var gpuPreferred = "cpu"
    /// A ReadWriteMany claim shared by the ingress (uploads) and the functions (drop and export folders).
    var dataVolumeClaim: String?
    var cpuRequest = "250m", memoryRequest = "512Mi", memoryLimit = "4Gi"

    static let protocols = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
    static let mechanisms = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

    /// Reads and checks a settings file; errors name the file and the field.
    init(file: String) throws {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw ConfigurationError(file: file, field: nil, message: "cannot be read")
        }
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text) } catch { throw ConfigurationError(file: file, field: nil, message: "is not valid YAML: \(error)") }
        guard case .object(let root)? = JSONValue(any: loaded) else {
            throw ConfigurationError(file: file, field: nil, message: "must be a mapping with at least image and kafka.brokers")
        }
        func fail(_ field: String, _ message: String) -> ConfigurationError { ConfigurationError(file: file, field: field, message: message) }
        func string(_ o: [String: JSONValue], _ key: String, _ field: String) throws -> String? {
            guard let v = o[key] else { return nil }
            guard let s = v.stringValue, !s.isEmpty, s.utf8.count <= 512 else { throw fail(field, "must be a non-empty string, got \(v.serialized())") }
            return s
        }
        func int(_ o: [String: JSONValue], _ key: String, _ field: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let v = o[key] else { return nil }
            guard let d = v.numberValue, d == d.rounded(), range.contains(Int(d)) else {
                throw fail(field, "must be a whole number from \(range.lowerBound) to \(range.upperBound), got \(v.serialized())")
            }
            return Int(d)
        }
        func object(_ key: String) throws -> [String: JSONValue] {
            guard let v = root[key] else { return [:] }
            guard case .object(let o) = v else { throw fail(key, "must be a mapping") }
            return o
        }
        let known = ["namespace", "image", "imagePullPolicy", "kafka", "postgres", "router", "ingress", "gpu", "data", "resources"]
        if let unknown = root.keys.sorted().first(where: { !known.contains($0) }) {
            throw fail(unknown, "is not a setting; the settings are \(known.joined(separator: ", "))")
        }
        if let n = try string(root, "namespace", "namespace") {
            guard n.range(of: "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", options: .regularExpression) != nil else {
                throw fail("namespace", "must be a DNS label (a-z, 0-9, '-'), got \(EventLimits.quoted(n))")
            }
            namespace = n
        }
        guard let image = try string(root, "image", "image") else { throw fail("image", "is required: the image built from infra/Containerfile") }
        self.image = image
        if let p = try string(root, "imagePullPolicy", "imagePullPolicy") {
            guard ["Always", "IfNotPresent", "Never"].contains(p) else { throw fail("imagePullPolicy", "must be Always, IfNotPresent or Never") }
            imagePullPolicy = p
        }
        let kafka = try object("kafka")
        guard let brokers = try string(kafka, "brokers", "kafka.brokers") else { throw fail("kafka.brokers", "is required: the bootstrap servers, host:port,…") }
        kafkaBrokers = brokers
        if let p = try string(kafka, "securityProtocol", "kafka.securityProtocol") {
            guard Self.protocols.contains(p) else { throw fail("kafka.securityProtocol", "must be one of \(Self.protocols.joined(separator: ", ")), got \(EventLimits.quoted(p))") }
            kafkaSecurityProtocol = p
        }
        if let m = try string(kafka, "saslMechanism", "kafka.saslMechanism") {
            guard Self.mechanisms.contains(m) else { throw fail("kafka.saslMechanism", "must be one of \(Self.mechanisms.joined(separator: ", ")), got \(EventLimits.quoted(m))") }
            kafkaSASLMechanism = m
        }
        if kafkaSecurityProtocol.hasPrefix("SASL"), kafkaSASLMechanism == nil {
            throw fail("kafka.saslMechanism", "is required with securityProtocol \(kafkaSecurityProtocol)")
        }
        kafkaSecret = try string(kafka, "secret", "kafka.secret") ?? kafkaSecret
        partitions = try int(kafka, "partitions", "kafka.partitions", 1...10000) ?? partitions
        replicationFactor = try int(kafka, "replicationFactor", "kafka.replicationFactor", 1...100) ?? replicationFactor
        lagThreshold = try int(kafka, "lagThreshold", "kafka.lagThreshold", 1...100000) ?? lagThreshold
        postgresSecret = try string(try object("postgres"), "secret", "postgres.secret") ?? postgresSecret
        routerReplicas = try int(try object("router"), "replicas", "router.replicas", 1...100) ?? routerReplicas
        let ingress = try object("ingress")
        ingressReplicas = try int(ingress, "replicas", "ingress.replicas", 1...100) ?? ingressReplicas
        ingressPort = try int(ingress, "port", "ingress.port", 1024...65535) ?? ingressPort
        let gpu = try object("gpu")
        if let v = gpu["nodeSelector"] {
            guard case .object(let o) = v, o.values.allSatisfy({ $0.stringValue != nil }) else { throw fail("gpu.nodeSelector", "must map labels to strings") }
            gpuNodeSelector = o.mapValues { $0.stringValue! }
        }
        if let v = gpu["tolerations"] {
            guard case .array(let a) = v, a.allSatisfy({ $0.objectValue != nil }) else { throw fail("gpu.tolerations", "must be a list of tolerations") }
            gpuTolerations = a
        }
        if let p = try string(gpu, "preferred", "gpu.preferred") {
            guard ["job", "cpu"].contains(p) else { throw fail("gpu.preferred", "must be job (GPU nodes) or cpu (a Deployment), got \(EventLimits.quoted(p))") }
            gpuPreferred = p
        }
        dataVolumeClaim = try string(try object("data"), "volumeClaim", "data.volumeClaim")
        let resources = try object("resources")
        cpuRequest = try string(resources, "cpu", "resources.cpu") ?? cpuRequest
        memoryRequest = try string(resources, "memory", "resources.memory") ?? memoryRequest
        memoryLimit = try string(resources, "memoryLimit", "resources.memoryLimit") ?? memoryLimit
    }
}
