import AlmanacCore
import AlmanacKafka
import AlmanacPipeline
import AlmanacPostgres
import AlmanacFunctions
import AlmanacControlPlane
import AlmanacAPI
import ArgumentParser
import Foundation
import Logging

/// `almanac setup`: what an installation on real services needs before anything runs — the
/// schema migrated, and the topics created through the Admin API. Safe to run from many
/// processes at once (migrations take a lock; existing topics are left alone): on Kubernetes
/// it is the setup Job and every Deployment's init container. With `ALMANAC_KAFKA_REPLICATION`
/// it also refuses topics with fewer replicas, or a `min.insync.replicas` that would let an
/// acknowledged event live on one broker (`TopicDurability`).
struct Setup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Migrate the schema (DATABASE_URL) and create the topics on Kafka (KAFKA_BROKERS) through the Admin API.")
    @Option(help: "The folder of function manifests (their input topics are created).") var functions: String?
    @Option(help: "Partitions of each new topic.") var partitions: Int = 12
    @Option(help: "Replicas of each new topic (-1: the broker's default).") var replicationFactor: Int = -1
    @Flag(help: "Migrate only; create no topics.") var skipTopics = false

    func run() async throws {
        JSONLogHandler.bootstrap()
        let logger = Logger(label: "almanac.setup")
        let env = ProcessInfo.processInfo.environment
        guard let url = env["DATABASE_URL"], !url.isEmpty else { throw ValidationError("setup needs DATABASE_URL") }
        guard (1...10000).contains(partitions) else { throw ValidationError("--partitions must be 1 to 10000, got \(partitions)") }
        guard replicationFactor == -1 || (1...100).contains(replicationFactor) else {
            throw ValidationError("--replication-factor must be -1 or 1 to 100, got \(replicationFactor)")
        }
        let paths = AlmanacPaths.discover()
        let db = try await PostgresConnection.connect(url: url, applicationName: "almanac-setup", logger: logger)
        let applied = try await PostgresMigrator(directory: paths.migrations).migrate(db, logger: logger)
        await db.close()
        print("postgres   schema up to date\(applied.isEmpty ? "" : " (applied \(applied.map(String.init).joined(separator: ", ")))")")
        if skipTopics { return }
        guard let kafka = KafkaConfiguration.fromEnvironment(env) else { throw ValidationError("setup needs KAFKA_BROKERS (or --skip-topics)") }
        let manifests = try FunctionManifest.loadAll(from: functions ?? paths.functions)
        let topics = installationTopics(manifests, env: env)
        let admin = try KafkaAdmin(configuration: kafka)
        var missing: [String] = []
        for t in topics where !(await admin.topicExists(t)) { missing.append(t) }
        if !missing.isEmpty { try await admin.createTopics(missing, partitions: partitions, replicationFactor: replicationFactor) }
        print("kafka      topics present: \(topics.joined(separator: ", "))\(missing.isEmpty ? "" : " (created \(missing.joined(separator: ", ")))")")
        // Topics made before (by hand, or with other settings) must still keep what they acknowledge.
        if let replication = try KafkaAdmin.requiredReplication(env) {
            for warning in try await admin.requireDurability(topics: topics, replication: replication) { print("warning    \(warning)") }
            print("kafka      every topic has at least \(replication) replicas")
        }
    }
}
