import AlmanacPipeline
import AlmanacControlPlane
import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import AlmanacFunctions
import Foundation

/// What `GET /v1/functions` shows of the installation's functions: for each manifest, the
/// instances running out of its concurrency, the lag on its input topic (read as the
/// launcher reads it: positions kept with the effects, then the group's commits), its GPU
/// need and place in the GPU queue, whether the launcher holds it back as crash-looping,
/// and the asking tenant's own recent failures.
public struct FunctionBoard: Sendable {
    let manifests: [FunctionManifest]
    let admin: KafkaAdmin?
    /// Lags read in the last two seconds: consoles refresh every few seconds, and each read
    /// asks the broker for every partition's watermarks.
    let recent = RecentLags()

    /// Makes a board over the manifests; without `admin` the lag is not shown.
    public init(manifests: [FunctionManifest], admin: KafkaAdmin?) {
        self.manifests = manifests
        self.admin = admin
    }

    /// The functions' states as the API shows them to `tenant`.
    func states(db: PostgresConnection, tenant: String) async throws -> [JSONValue] {
        let instances = try await RuntimeBoard.instances(in: db)
        let crashes = try await RuntimeBoard.crashLoops(atLeast: 1, in: db)
        let queue = try await RuntimeBoard.gpuQueue(in: db)
        let failures = try await RuntimeBoard.recentFailures(tenant: tenant, limit: 50, in: db)
        let lags = await self.lags(db: db)
        return manifests.map { m in
            let crash = crashes.first { $0.function == m.name }, waiting = queue.first { $0.function == m.name }
            let consecutive = crash?.consecutive ?? 0
            let recent = failures.filter { $0.function == m.name }.prefix(5).map { f in
                JSONValue.object(["event_id": f.eventID.map(JSONValue.string) ?? .null, "event_type": f.eventType.map(JSONValue.string) ?? .null,
                                  "outcome": .string(f.outcome), "attempt": .number(Double(f.attempt)),
                                  "error": f.error.map(JSONValue.string) ?? .null, "started_at": .string(RFC3339.format(f.startedAt))])
            }
            return .object([
                "name": .string(m.name), "concurrency": .number(Double(m.concurrency)), "gpu": .string(m.gpu.rawValue),
                "instances": .number(Double(instances.filter { $0.function == m.name }.count)),
                "lag": lags[m.name].map { .number(Double($0)) } ?? .null,
                "crash_looping": .bool(consecutive >= CrashLoop.loopingAfter),
                "consecutive_crashes": .number(Double(consecutive)),
                "last_exit": crash.map { .string($0.lastStatus) } ?? .null,
                "held_until": crash.map { .string(RFC3339.format($0.heldUntil)) } ?? .null,
                "gpu_waiting_since": waiting.map { .string(RFC3339.format($0.waitingSince)) } ?? .null,
                "recent_failures": .array(recent),
            ])
        }
    }

    /// Each function's lag, where the broker answered.
    func lags(db: PostgresConnection) async -> [String: Int64] {
        if let fresh = recent.value(maxAge: 2) { return fresh }
        let read = await readLags(db: db)
        recent.store(read)
        return read
    }

    func readLags(db: PostgresConnection) async -> [String: Int64] {
        guard let admin, let cluster = try? await admin.clusterID() else { return [:] }
        let positions = (try? await ConsumerPositions.load(cluster: cluster, topics: manifests.map(\.inputTopic), in: db)) ?? [:]
        var out: [String: Int64] = [:]
        for m in manifests {
            if let lag = try? await admin.lag(group: m.consumerGroup, topic: m.inputTopic, positions: positions[m.name] ?? [:]) { out[m.name] = lag }
        }
        return out
    }
}

/// The last lags read, with when, guarded by a lock.
final class RecentLags: @unchecked Sendable {
    private let lock = NSLock()
    private var read: (at: Date, lags: [String: Int64])?

    func value(maxAge: TimeInterval) -> [String: Int64]? {
        lock.withLock { read.flatMap { Date().timeIntervalSince($0.at) <= maxAge ? $0.lags : nil } }
    }

    func store(_ lags: [String: Int64]) { lock.withLock { read = (Date(), lags) } }
}
