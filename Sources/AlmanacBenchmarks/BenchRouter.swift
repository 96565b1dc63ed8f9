import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import AlmanacFunctions
import AlmanacControlPlane
import AlmanacAPI
import ArgumentParser
import Foundation
import Logging

/// `almanac bench router`: router throughput, and the latency from an event's arrival on
/// the bus to its handler starting, warm and from zero.
struct BenchRouter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "router",
        abstract: "Measure router throughput and event-to-handler latency (warm and cold start).",
        discussion: """
            Starts a private Postgres and a mock Kafka cluster. Throughput: N events are put on the bus, then the \
            router routes them all (decode, match, produce to the function topic, archive in Postgres, commit); the \
            baseline is a bare Kafka pipe (consume, produce, commit) over the same events in the same run. Warm \
            latency: events are published at a steady rate to a function whose instance is running; each handler \
            notes when it started. Cold start: with no instance running, one event is published; the launcher \
            starts a process that handles it. The last line is JSON.
            """)

    @Option(help: "Events for the throughput phase.") var events = 100_000
    @Option(help: "Events for the warm-latency phase.") var latencyEvents = 1_000
    @Option(help: "Publish rate (events/s) in the warm-latency phase.") var rate = 200
    @Option(help: "Cold starts to measure.") var coldStarts = 7
    @Flag(help: "Keep the work folder (Postgres data and function logs) for inspection.") var keep = false

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("almanac-bench-\(getpid())").path
        try FileManager.default.createDirectory(atPath: "\(work)/functions", withIntermediateDirectories: true)
        chmod(work, 0o755)
        defer { if keep { say("work folder kept: \(work)") } else { try? FileManager.default.removeItem(atPath: work) } }
        let (pg, db) = try await benchPostgres(work: work, logger: logger)
        defer { pg.stop(mode: "immediate") }
        let paths = AlmanacPaths.discover()
        try await db.exec("CREATE TABLE bench_starts (event_id text PRIMARY KEY, published_at timestamptz NOT NULL, started_at timestamptz NOT NULL)")

        let cluster = try KafkaMockCluster()
        let manifests = [
            FunctionManifest(name: "bench-throughput", run: .executable("almanac"),
                             subscriptions: [try EventPattern(json: #"{"type":["bench.throughput"]}"#)]),
            FunctionManifest(name: "bench-warm", run: .executable("almanac"),
                             subscriptions: [try EventPattern(json: #"{"type":["bench.warm"]}"#)], idleTimeout: 600),
            FunctionManifest(name: "bench-cold", run: .executable("almanac", arguments: ["function", "bench-sink"]),
                             subscriptions: [try EventPattern(json: #"{"type":["bench.cold"]}"#)], idleTimeout: 0.3,
                             directory: "\(work)/functions/bench-cold"),
        ]
        try FileManager.default.createDirectory(atPath: "\(work)/functions/bench-cold", withIntermediateDirectories: true)
        try """
            name: bench-cold
            run: { executable: almanac, arguments: [function, bench-sink] }
            subscriptions: [{ type: [bench.cold] }]
            idleTimeout: 300ms
            """.write(toFile: "\(work)/functions/bench-cold/function.yaml", atomically: true, encoding: .utf8)
        for t in [Outbox.busTopic, DeadLetter.topic, "bench.pipe.out"] + manifests.map(\.inputTopic) {
            try cluster.createTopic(t, partitions: 4)
        }
        let kafka = cluster.configuration
        let producer = try KafkaProducer(configuration: kafka, lingerMs: 5)
        await producer.warm(topics: [Outbox.busTopic])

        // Fill the bus.
        say("putting \(events) events on the bus")
        let fillStart = ContinuousClock.now
        try await produceMany(producer, count: events) { i in
            CloudEvent(source: "bench", type: "bench.throughput", subject: "ds\(i % 64)", json: ["i": .number(Double(i))])
        }
        say("  produced in \(fmt(seconds(since: fillStart))) s")

        // Baseline: a bare Kafka pipe over the same records.
        let baseline = try await pipeThroughput(kafka, count: events)
        say("baseline pipe (consume, produce, commit): \(Int(baseline)) events/s")

        // The router over the same records.
        let metrics = MetricsRegistry()
        let launcherDB = try await PostgresConnection.connect(url: pg.url)
        let admin = try KafkaAdmin(configuration: kafka)
        let launcher = Launcher(manifests: [manifests[2]], admin: admin,
                                paths: AlmanacPaths(root: work, binaries: paths.binaries), gpus: GPUInventory(slots: []),
                                instanceEnvironment: ["DATABASE_URL": pg.url, "KAFKA_BROKERS": kafka.brokers, "ALMANAC_LOG_LEVEL": keep ? "debug" : "warning"],
                                logDirectory: "\(work)/logs", database: launcherDB, logger: logger, metrics: metrics)
        let routerProducer = try KafkaProducer(configuration: kafka)
        await routerProducer.warm(topics: manifests.map(\.inputTopic) + [DeadLetter.topic])
        let router = EventRouter(manifests: manifests, schemas: EventSchemaRegistry(), database: db, producer: routerProducer,
                                 source: try KafkaConsumer(configuration: kafka, groupID: EventRouter.consumerGroup, topics: [Outbox.busTopic]),
                                 logger: logger, metrics: metrics) { names in if !names.isEmpty { launcher.poke(names) } }
        let routeStart = ContinuousClock.now
        let routing = BackgroundServices([router], logger: logger)
        let launching = Task { await launcher.rounds() }
        defer { launching.cancel() }
        var firstSeen: ContinuousClock.Instant?
        while metrics.counter("almanac_events_received_total") < Double(events) {
            if firstSeen == nil && metrics.counter("almanac_events_received_total") > 0 { firstSeen = ContinuousClock.now }
            try await Task.sleep(for: .milliseconds(5))
            if seconds(since: routeStart) > 600 { throw ValidationError("the router did not finish in 10 minutes") }
        }
        // Measured from the first routed batch, so the group join (3 s in the mock cluster) is not counted.
        let routed = Double(events) / seconds(since: firstSeen ?? routeStart)
        let archived = try await db.query("SELECT count(*) AS n FROM event_archive").first?.decode("n", as: Int.self) ?? 0
        say("router: \(Int(routed)) events/s (\(fmt(routed / baseline))× the bare pipe); \(archived) archived")

        // Warm latency: an instance of bench-warm runs in this process with the SDK's run loop.
        let starts = LatencyLog()
        let warmManifest = manifests[1]
        let warmRuntime = FunctionRuntime(
            manifest: warmManifest,
            handler: ClosureFunctionHandler { event, _ in starts.record(event) },
            database: try await PostgresConnection.connect(url: pg.url), producer: producer,
            source: try KafkaConsumer(configuration: kafka, groupID: warmManifest.consumerGroup, topics: [warmManifest.inputTopic], assignment: .all),
            schemas: EventSchemaRegistry(), clusterID: try await producer.clusterID(), logger: logger, metrics: metrics)
        let warmService = BackgroundServices([warmRuntime], logger: logger)
        // Let it settle (one event through), then measure.
        try await publishTimed(producer, type: "bench.warm", i: -1)
        while starts.count < 1 { try await Task.sleep(for: .milliseconds(10)) }
        starts.reset()
        say("warm latency: \(latencyEvents) events at \(rate)/s")
        let gap = 1.0 / Double(rate)
        let t0 = ContinuousClock.now
        for i in 0..<latencyEvents {
            let due = t0 + .milliseconds(Int(Double(i) * gap * 1000))
            if due > ContinuousClock.now { try await Task.sleep(until: due, clock: .continuous) }
            try await publishTimed(producer, type: "bench.warm", i: i)
        }
        while starts.count < latencyEvents && seconds(since: t0) < 120 { try await Task.sleep(for: .milliseconds(10)) }
        try? await warmService.shutdown()
        let warm = starts.values.sorted()
        let p50 = percentile(warm, 0.5) * 1000, p99 = percentile(warm, 0.99) * 1000
        say("  p50 \(fmt(p50)) ms, p99 \(fmt(p99)) ms, max \(fmt((warm.last ?? 0) * 1000)) ms")

        // Cold start: nothing running; one event; the launcher starts a process.
        var colds: [Double] = []
        for i in 0..<coldStarts {
            while !(await launcher.snapshot().instances.isEmpty) { try await Task.sleep(for: .milliseconds(20)) }
            try await Task.sleep(for: .milliseconds(200))
            let e = try await publishTimed(producer, type: "bench.cold", i: i)
            let deadline = ContinuousClock.now + .seconds(30)
            var row: PostgresRow?
            while row == nil && ContinuousClock.now < deadline {
                row = try await db.query("SELECT extract(epoch FROM started_at - published_at) AS s FROM bench_starts WHERE event_id = $1", [e.id]).first
                if row == nil { try await Task.sleep(for: .milliseconds(5)) }
            }
            guard let row else { throw ValidationError("cold start \(i): the event was not handled within 30 s; see \(work)/logs") }
            colds.append(try row.decode("s", as: Double.self) * 1000)
        }
        let cold = percentile(colds.sorted(), 0.5)
        say("cold start to handler: median \(fmt(cold)) ms over \(coldStarts) (\(colds.map(fmt).joined(separator: ", ")) ms)")
        await launcher.stopAll(grace: .seconds(5))
        try? await routing.shutdown()

        let result: JSONValue = [
            "events_per_s": .number(routed.rounded()), "p50_ms": .number(round3(p50)), "p99_ms": .number(round3(p99)),
            "cold_start_ms": .number(round3(cold)), "baseline_pipe_events_per_s": .number(baseline.rounded()),
            "router_vs_pipe": .number(round3(routed / baseline)), "events": .number(Double(events)),
            "warm_rate_per_s": .number(Double(rate)), "cold_starts_ms": .array(colds.map { .number(round3($0)) }),
        ]
        print(result.serialized())
    }

    func say(_ s: String) {
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }

    func produceMany(_ producer: KafkaProducer, count: Int, make: (Int) -> CloudEvent) async throws {
        let window = 20_000
        var sent = 0
        while sent < count {
            let n = min(window, count - sent)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in sent..<(sent + n) {
                    let r = make(i).kafkaBinary()
                    group.addTask { try await producer.send(topic: Outbox.busTopic, key: r.key, value: r.value, headers: r.headers) }
                }
                try await group.waitForAll()
            }
            sent += n
        }
    }

    @discardableResult
    func publishTimed(_ producer: KafkaProducer, type: String, i: Int) async throws -> CloudEvent {
        let e = CloudEvent(source: "bench", type: type, subject: "ds\(i % 8)", time: Date(), json: ["i": .number(Double(i))])
        let r = e.kafkaBinary()
        try await producer.send(topic: Outbox.busTopic, key: r.key, value: r.value, headers: r.headers)
        return e
    }

    /// Consume → produce → commit with no decoding, matching or archiving: what Kafka alone allows.
    func pipeThroughput(_ kafka: KafkaConfiguration, count: Int) async throws -> Double {
        let consumer = try KafkaConsumer(configuration: kafka, groupID: "bench.pipe", topics: [Outbox.busTopic], assignment: .all)
        let producer = try KafkaProducer(configuration: kafka)
        await producer.warm(topics: ["bench.pipe.out"])
        var done = 0
        var start: ContinuousClock.Instant?
        while done < count {
            let batch = try await consumer.poll(max: 2000, timeout: .milliseconds(100))
            if batch.isEmpty { continue }
            if start == nil { start = ContinuousClock.now }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for r in batch {
                    group.addTask { try await producer.send(topic: "bench.pipe.out", key: r.key, value: r.value, headers: r.headers) }
                }
                try await group.waitForAll()
            }
            var positions: [Int32: KafkaCommitPosition] = [:]
            for r in batch { positions[r.partition] = KafkaCommitPosition(after: r) }
            try await consumer.commit(Array(positions.values))
            done += batch.count
        }
        await consumer.close()
        return Double(count) / seconds(since: start!)
    }
}

/// Handler start latencies, recorded from the handler.
final class LatencyLog: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var latencies: [Double] = []

    func record(_ event: CloudEvent) {
        let now = Date()
        guard let t = event.time else { return }
        lock.withLock { latencies.append(now.timeIntervalSince(t)) }
    }
    func reset() { lock.withLock { latencies.removeAll() } }
    var count: Int { lock.withLock { latencies.count } }
    var values: [Double] { lock.withLock { latencies } }
}

/// The function the cold-start phase launches: notes when its handler started.
public struct BenchSink: AsyncParsableCommand {
    /// `almanac function bench-sink`, hidden from help.
    public static let configuration = CommandConfiguration(commandName: "bench-sink", abstract: "The benchmark's function (started by the launcher).",
                                                           shouldDisplay: false)
    /// Makes the command (ArgumentParser parses into it).
    public init() {}
    /// Runs an instance of the benchmark's function.
    public func run() async throws {
        await FunctionMain.run(ClosureFunctionHandler { event, context in
            let started = Date()
            let published = event.time ?? started
            context.write { tx in
                try await tx.exec("INSERT INTO bench_starts (event_id, published_at, started_at) VALUES ($1, $2, $3)",
                                  [event.id, published, started])
            }
        })
    }
}

func seconds(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

func percentile(_ sorted: [Double], _ q: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let pos = q * Double(sorted.count - 1)
    let lo = Int(pos.rounded(.down)), hi = min(sorted.count - 1, lo + 1)
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - Double(lo))
}

func fmt(_ x: Double) -> String { String(format: x < 10 ? "%.2f" : "%.0f", x) }
func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
