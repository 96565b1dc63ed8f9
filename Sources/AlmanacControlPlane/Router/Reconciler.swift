import AlmanacFunctions
import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import Foundation
import Logging

/// Makes a Kafka cluster that came back empty (or whose offsets went backwards) whole
/// again from what Postgres knows, before the router starts.
///
/// The bus is not the record: the archive holds every event the ingress accepted and the
/// router saw, the processed marks say which function finished which event, and the outbox
/// holds what functions emitted. On a cluster this deployment has not seen (its id is not in
/// `kafka_clusters`), or one whose high watermarks fell below the positions kept in Postgres,
/// the reconciler (1) relays again every outbox row the bus never confirmed — sent, but
/// neither archived by the router nor dead-lettered by it — and (2) produces every archived
/// event that may be unfinished — archived since the previous cluster was first seen, or
/// routed again by that cluster's own reconciliation — to each subscribed function that has
/// not processed it. Event ids make any copy that was not lost harmless.
struct Reconciler {
    let manifests: [FunctionManifest]
    let database: PostgresConnection
    let producer: KafkaProducer
    let admin: KafkaAdmin
    let logger: Logger

    /// What a reconciliation did.
    struct Report: Sendable, Equatable {
        /// Why it ran (`new cluster`, `offsets went backwards`), or nil when it did not.
        var reason: String?
        /// Outbox rows set to be relayed again.
        var outboxRearmed = 0
        /// Deliveries of archived events to function topics.
        var rerouted = 0
    }

    /// Checks the cluster and reconciles when it is new or rewound.
    func run() async throws -> Report {
        let cluster = try await producer.clusterID()
        // Events that may be unfinished: those archived since the cluster before was first
        // seen, and those its own reconciliation routed again (still unfinished, perhaps).
        let known = try await KafkaClusters.window(of: cluster, in: database)
        var reason: String?
        var since: Date?
        if known == nil {
            since = try await KafkaClusters.latestWindow(in: database)
            try await KafkaClusters.register(cluster, in: database)
            reason = "new cluster \(cluster)"
        } else if try await offsetsWentBackwards(cluster: cluster) {
            since = known ?? nil
            try await KafkaClusters.restart(cluster, in: database)
            reason = "offsets of cluster \(cluster) went backwards"
        }
        guard let reason else { return Report() }
        var report = Report(reason: reason)
        report.outboxRearmed = try await EventArchive.rearmUnseenOutbox(in: database, sentSince: since, olderThan: nil)
        while try await Outbox.relay(function: nil, db: database, producer: producer, logger: logger) > 0 {}
        let (rerouted, oldest) = try await reroute(since: since)
        report.rerouted = rerouted
        try await KafkaClusters.reconciled(cluster, oldestRerouted: oldest, in: database)
        logger.notice("reconciled the Kafka cluster from Postgres", metadata: [
            "reason": "\(reason)", "outbox_rearmed": "\(report.outboxRearmed)", "rerouted": "\(report.rerouted)"])
        return report
    }

    /// Whether a position kept in Postgres for this cluster is past its partition's end.
    func offsetsWentBackwards(cluster: String) async throws -> Bool {
        let positions = try await ConsumerPositions.load(cluster: cluster, topics: manifests.map(\.inputTopic), in: database)
        for m in manifests {
            for (partition, next) in positions[m.name] ?? [:] {
                guard let marks = try? await admin.watermarks(topic: m.inputTopic, partition: partition) else { continue }
                if marks.high < next { return true }
            }
        }
        return false
    }


    /// Produces archived events to the subscribed functions that have not processed them, page by page.
    /// - Returns: the deliveries made, and the oldest event delivered (the archive is read oldest first).
    func reroute(since from: Date?) async throws -> (Int, (id: String, source: String)?) {
        var cursor: EventArchive.Cursor?
        var delivered = 0
        var oldest: (id: String, source: String)?
        repeat {
            let (events, next) = try await EventArchive.page(in: database, .init(since: from, clock: .archived), after: cursor)
            cursor = next
            let processed = try await ProcessedEvents.finished(events, in: database)
            for event in events {
                let document = EventPattern.document(for: event)
                for m in manifests where m.subscribes(toDocument: document)
                    && !processed.contains(.init(function: m.name, event: event)) {
                    let r = event.kafkaBinary()
                    try await producer.send(topic: m.inputTopic, key: r.key, value: r.value, headers: r.headers)
                    delivered += 1
                    if oldest == nil { oldest = (event.id, event.source) }
                }
            }
        } while cursor != nil
        return (delivered, oldest)
    }
}
