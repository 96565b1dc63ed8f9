import AlmanacCore
import AlmanacHTTP
import AlmanacKafka
import AlmanacPipeline
import AlmanacPostgres
import AlmanacFunctions
import AlmanacControlPlane
import AlmanacAPI
import ArgumentParser
import Foundation
import Logging

/// `almanac bench api`: the forecast query's latency and throughput through the `/v1` API,
/// next to `psql` running the same lookup in the same run.
struct BenchAPI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "Measure GET /v1/datasets/{name}/forecast?item=… latency (p50, p99) and queries/s next to psql.",
        discussion: """
            Starts a private Postgres, a mock Kafka cluster and the control plane with the /v1 API. A dataset gets \
            a live forecast for every item of the file (M4 Hourly: 414 items) over `--horizon` steps after each item's \
            last timestamp, three quantiles each, stored as the export function stores it. Every item is queried once \
            over HTTP (the first query of an item: its rows read and rendered), then random items are queried: over \
            HTTP (bearer token checked against Postgres on every request, the item's live forecast looked up, its \
            answer rendered or kept from before; one client at a time, then `--clients` at once; each client a thread \
            sending on one kept-alive connection), and by psql executing the item's lookup (the statement the API \
            reads rows with), prepared, for the same items in one session, then in `--clients` sessions at once. \
            The throughput ratios compare the one-at-a-time runs (`qps_ratio`) and the concurrent ones \
            (`concurrent_qps_ratio`). The last line is JSON.
            """)

    @Option(help: "The CSV whose items get forecasts (item_id,timestamp,target_value).") var file: String
    @Option(help: "Steps per item.") var horizon = 48
    @Option(help: "Queries per run.") var queries = 3000
    @Option(help: "Concurrent clients in the concurrent run.") var clients = 4

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        guard FileManager.default.fileExists(atPath: file) else { throw ValidationError("no file \(file)") }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("almanac-bench-api-\(getpid())").path
        try FileManager.default.createDirectory(atPath: "\(work)/functions", withIntermediateDirectories: true)
        chmod(work, 0o755)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let (pg, db) = try await benchPostgres(work: work, logger: logger)
        defer { pg.stop(mode: "immediate") }
        let paths = AlmanacPaths.discover()

        let items = try await Self.storeForecast(file: file, horizon: horizon, db: db)
        let token = try await TenantDirectory.create(tenant: "bench", in: db).token
        let cluster = try KafkaMockCluster()
        try cluster.createTopic(Outbox.busTopic, partitions: 1)
        let api = try await ForecastAPI.connect(url: pg.url, connections: max(2, clients))
        let plane = try await ControlPlane(configuration: .init(
            kafka: cluster.configuration, databaseURL: pg.url, paths: paths, functionsDirectory: "\(work)/functions", logDirectory: "\(work)/logs",
            routes: [api], rateLimit: 1e9), logger: logger)
        let running = BackgroundServices([plane], logger: logger)
        var port: Int?
        for _ in 0..<600 where port == nil {
            port = plane.boundHTTPPort
            try await Task.sleep(for: .milliseconds(50))
        }
        guard let port else { throw ValidationError("the ingress did not listen") }
        let base = "http://127.0.0.1:\(port)/v1/datasets/hourly/forecast?item="
        var rng = SystemRandomNumberGenerator()
        let picks = (0..<queries).map { _ in items.randomElement(using: &rng)! }

        // Warm up: every item once (a forecast table is read again and again), then measure.
        let first = try await Self.timeHTTP(items, base: base, token: token, clients: 1)
        let floor = try await Self.timeHTTP(picks, base: "http://127.0.0.1:\(port)/healthz?", token: token, clients: 1)
        let sequential = try await Self.timeHTTP(picks, base: base, token: token, clients: 1)
        let concurrent = try await Self.timeHTTP(picks, base: base, token: token, clients: clients)
        let psql = try await Self.timePSQL(picks, pg: pg, work: work)
        let psqlConcurrent = try await Self.timePSQL(picks, pg: pg, work: work, sessions: clients)
        try await running.shutdown()
        await api.close()
        await db.close()

        func ms(_ s: Double) -> String { String(format: "%.2f", s * 1000) }
        print("items \(items.count), \(horizon) steps each, \(queries) queries per run")
        print("API, 1 client:        p50 \(ms(sequential.p50)) ms  p99 \(ms(sequential.p99)) ms  \(Int(sequential.qps)) queries/s")
        print("API, \(clients) clients:       p50 \(ms(concurrent.p50)) ms  p99 \(ms(concurrent.p99)) ms  \(Int(concurrent.qps)) queries/s")
        print("API, first per item:  p50 \(ms(first.p50)) ms  p99 \(ms(first.p99)) ms  \(Int(first.qps)) queries/s (rows read and rendered)")
        print("GET /healthz:         p50 \(ms(floor.p50)) ms  p99 \(ms(floor.p99)) ms  \(Int(floor.qps)) queries/s (the HTTP round trip alone)")
        print("psql, same lookup:    p50 \(ms(psql.p50)) ms  p99 \(ms(psql.p99)) ms  \(Int(psql.qps)) queries/s")
        print("psql, \(clients) sessions:     p50 \(ms(psqlConcurrent.p50)) ms  p99 \(ms(psqlConcurrent.p99)) ms  \(Int(psqlConcurrent.qps)) queries/s")
        print(String(format: "throughput ratio API/psql: %.3f one at a time, %.3f with %d at once", sequential.qps / psql.qps,
                     concurrent.qps / psqlConcurrent.qps, clients))
        print("{\"items\":\(items.count),\"queries\":\(queries),\"p50_ms\":\(round3(sequential.p50 * 1000)),\"p99_ms\":\(round3(sequential.p99 * 1000)),"
              + "\"qps\":\(Int(sequential.qps)),\"concurrent_clients\":\(clients),\"concurrent_p50_ms\":\(round3(concurrent.p50 * 1000)),"
              + "\"concurrent_p99_ms\":\(round3(concurrent.p99 * 1000)),\"concurrent_qps\":\(Int(concurrent.qps)),"
              + "\"psql_p50_ms\":\(round3(psql.p50 * 1000)),\"psql_p99_ms\":\(round3(psql.p99 * 1000)),\"psql_qps\":\(Int(psql.qps)),"
              + "\"first_p50_ms\":\(round3(first.p50 * 1000)),\"first_p99_ms\":\(round3(first.p99 * 1000)),\"first_qps\":\(Int(first.qps)),"
              + "\"psql_concurrent_qps\":\(Int(psqlConcurrent.qps)),\"concurrent_qps_ratio\":\(round3(concurrent.qps / psqlConcurrent.qps)),"
              + "\"healthz_p50_ms\":\(round3(floor.p50 * 1000)),\"qps_ratio\":\(round3(sequential.qps / psql.qps))}")
    }

    struct Timing { var p50: Double, p99: Double, qps: Double }

    /// A live forecast for every item of the file: `horizon` hourly steps after its last timestamp.
    /// - Returns: the item ids.
    static func storeForecast(file: String, horizon: Int, db: PostgresConnection) async throws -> [String] {
        var last: [String: String] = [:]
        var order: [String] = []
        let text = try String(contentsOfFile: file, encoding: .utf8)
        for line in text.split(whereSeparator: \.isNewline).dropFirst() {
            let parts = line.split(separator: ",", maxSplits: 2)
            guard parts.count == 3 else { continue }
            let id = String(parts[0])
            if last[id] == nil { order.append(id) }
            last[id] = String(parts[1])
        }
        try await DatasetStore.create(Dataset(tenant: "bench", name: "hourly", horizon: horizon, frequency: "hourly"), in: db)
        try await db.exec("""
            INSERT INTO predictors (id, tenant, dataset, dataset_version, trigger_event, items, metrics) VALUES ('p-bench', 'bench', 'hourly', 1, 'bench', $1, '{}')
            """, [order.count])
        try await db.exec("""
            INSERT INTO forecasts (id, tenant, dataset, predictor_id, dataset_version, trigger_event, quantiles, items)
            VALUES ('f-bench', 'bench', 'hourly', 'p-bench', 1, 'bench', '{0.1,0.5,0.9}', $1)
            """, [order.count])
        try await db.exec("""
            INSERT INTO latest_forecasts (tenant, dataset, item_id, ts, forecast_id, quantiles, q, mean)
            SELECT 'bench', 'hourly', i, t::timestamptz + make_interval(hours => s), 'f-bench', '{0.1,0.5,0.9}',
                   ARRAY[v * 0.9, v, v * 1.1], v
            FROM unnest($1::text[], $2::text[]) AS x(i, t), generate_series(1, $3) AS s, LATERAL (SELECT 100.0 + s AS v) y
            """, [order, order.map { last[$0]! }, horizon])
        return order
    }

    static func get(_ client: HTTPClient, _ url: String, token: String) throws -> Int {
        try client.sendBlocking(HTTPClientRequest(method: "GET", url: url, headers: [("Authorization", "Bearer \(token)")])).status
    }

    /// Queries the items over HTTP with `clients` clients at once, each a thread of its own
    /// sending one request after the other on one kept-alive connection (as psql sends its
    /// statements), so the client's own scheduling is not counted against the API.
    static func timeHTTP(_ items: [String], base: String, token: String, clients: Int) async throws -> Timing {
        let started = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for c in 0..<clients {
                let mine = stride(from: c, to: items.count, by: clients).map { items[$0] }
                group.addTask {
                    try await onThread {
                        let client = HTTPClient()
                        var out: [Double] = []
                        out.reserveCapacity(mine.count)
                        for item in mine {
                            let t = ContinuousClock.now
                            let status = try get(client, base + item, token: token)
                            guard status == 200 else { throw ValidationError("GET for \(item) answered \(status)") }
                            out.append(seconds(since: t))
                        }
                        return out
                    }
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        let total = seconds(since: started)
        let sorted = latencies.sorted()
        return Timing(p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), qps: Double(items.count) / total)
    }

    /// Runs blocking work on a thread of its own and awaits its result.
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { cont in
            let thread = Thread { cont.resume(with: Result { try work() }) }
            thread.start()
        }
    }

    /// psql executing the item's lookup for the same items: in one session, or in `sessions`
    /// sessions at once (one psql each, the items dealt out as to the HTTP clients).
    static func timePSQL(_ items: [String], pg: EmbeddedPostgres, work: String, sessions: Int = 1) async throws -> Timing {
        var paths: [String] = []
        for s in 0..<sessions {
            var script = "\\timing on\n"
            script += """
                PREPARE q(text) AS SELECT item_id, ts, mean, array_to_string(q, ',') AS q, array_to_string(quantiles, ',') AS levels, forecast_id
                FROM latest_forecasts WHERE tenant = 'bench' AND dataset = 'hourly' AND item_id = $1 ORDER BY ts;

                """
            for item in stride(from: s, to: items.count, by: sessions).map({ items[$0] }) {
                script += "EXECUTE q('\(item.replacingOccurrences(of: "'", with: "''"))');\n"
            }
            let path = "\(work)/queries-\(s).sql"
            try script.write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o644)
            paths.append(path)
        }
        let started = ContinuousClock.now
        let times = try await withThrowingTaskGroup(of: [Double].self) { group in
            for path in paths {
                group.addTask {
                    try await onThread {
                        let r = try Subprocess.run("\(pg.binDirectory)/psql", ["-X", "-q", "-A", "-t", "-d", pg.url, "-f", path])
                        guard r.status == 0 else { throw ValidationError("psql failed: \(r.output.suffix(2000))") }
                        return Array(r.output.split(separator: "\n").compactMap { line -> Double? in
                            guard line.hasPrefix("Time: "), let ms = Double(line.dropFirst(6).split(separator: " ").first ?? "") else { return nil }
                            return ms / 1000
                        }.dropFirst())  // the PREPARE
                    }
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        let total = seconds(since: started)
        let sorted = times.sorted()
        return Timing(p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), qps: Double(items.count) / total)
    }
}
