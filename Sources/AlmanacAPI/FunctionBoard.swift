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
        let instances = try await db.query("SELECT function, count(*)::bigint AS n FROM function_instances GROUP BY function")
        let crashes = try await db.query("SELECT function, consecutive, last_status, held_until FROM function_crashes")
        let queue = try await db.query("SELECT function, waiting_since, lag FROM gpu_queue")
        // The tenant's latest failed attempts, through the partial index of failures only
        // (a board refreshed every few seconds must not scan every invocation).
        let failures = try await db.query("""
            SELECT function, event_id, event_type, outcome, attempt, error, started_at FROM invocations
            WHERE tenant = $1 AND outcome IN ('failed', 'timed_out', 'dead_lettered') ORDER BY id DESC LIMIT 50
            """, [tenant])
        let lags = await self.lags(db: db)
        func row(_ rows: PostgresRows, _ name: String) -> PostgresRow? { rows.first { $0.text("function") == name } }
        return try manifests.map { m in
            let crash = row(crashes, m.name), waiting = row(queue, m.name)
            let consecutive = (try crash?.decode("consecutive", as: Int.self)) ?? 0
            let recent = try failures.filter { $0.text("function") == m.name }.prefix(5).map { f in
                JSONValue.object(["event_id": f.text("event_id").map(JSONValue.string) ?? .null,
                                  "event_type": f.text("event_type").map(JSONValue.string) ?? .null,
                                  "outcome": .string(try f.decode("outcome")), "attempt": .number(Double(try f.decode("attempt", as: Int.self))),
                                  "error": f.text("error").map(JSONValue.string) ?? .null,
                                  "started_at": .string(RFC3339.format(try f.decode("started_at")))])
            }
            return .object([
                "name": .string(m.name), "concurrency": .number(Double(m.concurrency)), "gpu": .string(m.gpu.rawValue),
                "instances": .number(Double((try row(instances, m.name)?.decode("n", as: Int64.self)) ?? 0)),
                "lag": lags[m.name].map { .number(Double($0)) } ?? .null,
                "crash_looping": .bool(consecutive >= CrashLoop.loopingAfter),
                "consecutive_crashes": .number(Double(consecutive)),
                "last_exit": crash?.text("last_status").map(JSONValue.string) ?? .null,
                "held_until": (try crash?.decodeIfPresent("held_until", as: Date.self)).map { .string(RFC3339.format($0)) } ?? .null,
                "gpu_waiting_since": (try waiting?.decodeIfPresent("waiting_since", as: Date.self)).map { .string(RFC3339.format($0)) } ?? .null,
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
