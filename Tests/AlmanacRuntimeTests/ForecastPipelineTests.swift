import AlmanacCore
@testable import AlmanacPipeline
@testable import AlmanacAPI
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Testing

/// A webhook receiver for tests: verifies every request's Standard Webhooks signature with its
/// own HMAC, records what arrived, and answers with the status the test sets.
final class WebhookReceiver: @unchecked Sendable {
    struct Delivery {
        var id: String
        var body: Data
        var signatureValid: Bool
        var status: Int
        var type: String?
        var timestamp = ""
        var signature = ""
    }

    private let lock = NSLock()
    private var received: [Delivery] = []
    private var statuses: [Int] = []
    var secret = ""

    private var held = false

    /// The next requests' answers, in order; then 200.
    func answer(_ codes: [Int]) { lock.withLock { statuses = codes } }

    /// Holds every answer (the delivery is recorded here, the sender waits) until `release()`.
    func hold() { lock.withLock { held = true } }

    /// Sends the held answers.
    func release() { lock.withLock { held = false } }

    var isHeld: Bool { lock.withLock { held } }

    var deliveries: [Delivery] { lock.withLock { received } }

    /// The accepted (2xx) deliveries.
    var accepted: [Delivery] { deliveries.filter { (200..<300).contains($0.status) } }

    /// Whether one of the header's `v1,` signatures is `secret`'s, computed here independently
    /// of the code under test.
    static func verifies(secret: String, id: String, timestamp: String, signature: String, body: Data) -> Bool {
        let key = SymmetricKey(data: Data(base64Encoded: String(secret.dropFirst("whsec_".count))) ?? Data())
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(id).\(timestamp).".utf8) + body, using: key)
        let expected = "v1," + Data(mac).base64EncodedString()
        return signature.split(separator: " ").contains { $0 == expected }
    }

    func handle(id: String, timestamp: String, signature: String, body: Data) -> Int {
        let valid = Self.verifies(secret: secret, id: id, timestamp: timestamp, signature: signature, body: body)
        let type = (try? JSONValue(parsing: body))?["type"]?.stringValue
        return lock.withLock {
            let status = statuses.isEmpty ? 200 : statuses.removeFirst()
            received.append(Delivery(id: id, body: body, signatureValid: valid, status: valid ? status : 401, type: type,
                                     timestamp: timestamp, signature: signature))
            return valid ? status : 401
        }
    }

    /// Runs `body` with the receiver listening on a free port.
    func serve(_ body: (Int) async throws -> Void) async throws {
        try await withHTTPServer({ router in
            router.post("/hook") { request, _ in
                var r = request
                let bytes = try await r.collectBody(upTo: 1 << 24)
                let h = request.headers
                let code = self.handle(id: h[HTTPField.Name("webhook-id")!] ?? "", timestamp: h[HTTPField.Name("webhook-timestamp")!] ?? "",
                                       signature: h[HTTPField.Name("webhook-signature")!] ?? "", body: Data(buffer: bytes))
                while self.isHeld { try await Task.sleep(for: .milliseconds(10)) }
                return Response(status: HTTPResponse.Status(code: code))
            }
        }, body)
    }
}

/// Waits until `condition` holds (polling every 200 ms), or records a failure naming `what`.
func waitFor(_ what: String, timeout: Duration = .seconds(120), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(200))
    }
    Issue.record("timed out waiting for \(what)")
}

/// The whole pipeline on real Postgres, the mock cluster, the function processes and a real
/// HTTP receiver: data arrival → predictor → forecast → export → signed webhook; then new
/// actuals that breach the bound → retrain → new forecast → webhook.
@Suite(.serialized) struct ForecastPipelineTests {
    static let functions = ["ingest", "train", "forecast", "export", "monitor", "notify"]

    /// Daily rows for items with a weekly pattern; `scale` multiplies the level.
    func rows(items: [String], days: Range<Int>, scale: Double = 1) -> String {
        let start = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01
        var out = ""
        for (k, item) in items.enumerated() {
            for day in days {
                let v = (100 + Double(k) * 20 + [0, 5, 10, 8, 3, -6, -12][day % 7] + Double(day % 5)) * scale
                out += "\(item),\(RFC3339.format(start.addingTimeInterval(Double(day) * 86400)).prefix(10)),\(v)\n"
            }
        }
        return out
    }

    func drop(_ d: TestDeployment, _ name: String, _ body: String) throws -> String {
        try FileManager.default.createDirectory(atPath: "\(d.dropDirectory)/default/shop", withIntermediateDirectories: true)
        let path = "\(d.dropDirectory)/default/shop/\(name)"
        try Data(("item_id,timestamp,target_value\n" + body).utf8).write(to: URL(fileURLWithPath: path))
        return "file://" + path
    }

    func arrive(_ d: TestDeployment, _ url: String) async throws {
        var e = CloudEvent(id: UUID().uuidString.lowercased(), source: "test", type: "almanac.data.arrived", subject: "shop",
                           json: ["dataset": "shop", "url": .string(url)])
        e.tenant = "default"
        try await d.publish(e)
    }


    @Test func dataArrivalToWebhookThenBreachRetrainsAndForecastsAgain() async throws {
        let receiver = WebhookReceiver()
        try await receiver.serve { port in
            let d = try await TestDeployment(functions: [], pipeline: Self.functions)
            try await DatasetStore.create(Dataset(tenant: "default", name: "shop", horizon: 7, frequency: "daily"), in: d.db)
            let endpoint = try await Webhooks.add(tenant: "default", url: "http://127.0.0.1:\(port)/hook",
                                                  eventTypes: ["almanac.forecast.*", "almanac.accuracy.breached"], allowPrivate: true, in: d.db)
            receiver.secret = endpoint.secret
            try await d.startControlPlane()

            // First data: 3 items × 56 days → a predictor, a forecast, the export, a webhook.
            try await arrive(d, try drop(d, "history.csv", rows(items: ["A", "B", "C"], days: 0..<56)))
            try await waitFor("the first exported webhook") { receiver.accepted.contains { $0.type == "almanac.forecast.exported" } }
            #expect(try await d.count("SELECT count(*) AS n FROM predictors") == 1)
            #expect(try await d.count("SELECT count(*) AS n FROM predictor_items") == 3)
            #expect(try await d.count("SELECT count(*) AS n FROM latest_forecasts WHERE dataset = 'shop'") == 21)
            let first = try await d.db.query("SELECT DISTINCT forecast_id FROM latest_forecasts")
            #expect(first.count == 1)
            let firstID = try #require(first.first?.text("forecast_id"))
            let csv = try String(contentsOfFile: "\(d.exportDirectory)/default/shop/\(firstID).csv", encoding: .utf8)
            #expect(csv.hasPrefix("item_id,date,p10,p50,p90\n"))
            #expect(csv.split(separator: "\n").count == 22)
            let svg = try String(contentsOfFile: "\(d.exportDirectory)/default/shop/\(firstID).svg", encoding: .utf8)
            #expect(svg.contains("<svg") && svg.contains("<polygon") && svg.contains(">A<"))
            // Quantiles in the table never cross.
            #expect(try await d.count("SELECT count(*) AS n FROM latest_forecasts WHERE NOT (q[1] <= q[2] AND q[2] <= q[3])") == 0)

            // Later actuals at three times the level: the monitor breaches, the train function
            // retrains, a new forecast is exported and delivered.
            try await arrive(d, try drop(d, "week9.csv", rows(items: ["A", "B", "C"], days: 56..<63, scale: 3)))
            try await waitFor("the breach and the retrained forecast") {
                try await d.count("SELECT count(*) AS n FROM predictors") == 2
                    && receiver.accepted.filter { $0.type == "almanac.forecast.exported" }.count >= 3
                    && receiver.accepted.contains { $0.type == "almanac.accuracy.breached" }
            }
            let m = try await d.db.query("SELECT wape, bound, breached FROM accuracy_measurements")
            #expect(m.count == 1)
            #expect(m.first?.text("breached") == "t")
            #expect(try m.first?.decode("wape", as: Double.self) ?? 0 > 0.5)
            let retrained = try await d.db.query("SELECT dataset_version FROM predictors ORDER BY created_at")
            #expect(retrained.map { $0.text("dataset_version") } == ["1", "2"])
            try await waitFor("the latest forecast from the new predictor") {
                try await d.count("""
                    SELECT count(*) AS n FROM latest_forecasts l JOIN forecasts f ON f.id = l.forecast_id
                    JOIN predictors p ON p.id = f.predictor_id WHERE p.dataset_version = 2
                    """) == 21
            }

            // Every delivery was signed; every webhook-id arrived with one body only.
            #expect(receiver.deliveries.allSatisfy { $0.signatureValid })
            var bodies: [String: Data] = [:]
            for r in receiver.deliveries {
                #expect(bodies[r.id] == nil || bodies[r.id] == r.body, "webhook-id \(r.id) arrived with two payloads")
                bodies[r.id] = r.body
            }
            // The last export's delivery may still be in flight: every delivery ends delivered.
            try await waitFor("every delivery recorded as delivered") {
                try await d.count("SELECT count(*) AS n FROM webhook_deliveries WHERE state <> 'delivered'") == 0
            }
            #expect(try await d.count("SELECT count(*) AS n FROM dead_letters") == 0)
            await d.shutdown()
        }
    }

    @Test func receiverDownThenBackGetsEachWebhookOnceAndGoneDisablesTheEndpoint() async throws {
        let receiver = WebhookReceiver()
        try await receiver.serve { port in
            let d = try await TestDeployment(functions: [], pipeline: ["notify"])
            d.environment = ["ALMANAC_WEBHOOK_RETRY_SCALE": "0.002"]  // 10 ms, 0.6 s, 3.6 s, …
            d.withAPI = true  // `almanac webhooks redeliver` goes through /v1
            let token = TenantDirectory.newToken()
            try await TenantDirectory.ensure(tenant: "default", token: token, in: d.db)
            let endpoint = try await Webhooks.add(tenant: "default", url: "http://127.0.0.1:\(port)/hook",
                                                  eventTypes: ["almanac.forecast.exported"], allowPrivate: true, in: d.db)
            receiver.secret = endpoint.secret
            receiver.answer([503, 500, 429])
            try await d.startControlPlane()
            var e = CloudEvent(id: "exp-1", source: "test", type: "almanac.forecast.exported", subject: "shop",
                               json: ["dataset": "shop", "forecast_id": "fc-1", "rows": 3, "csv": "/x.csv", "chart": "/x.svg"])
            e.tenant = "default"
            try await d.publish(e)
            // The receiver answers before the notify function records the attempt: wait for both.
            try await waitFor("the delivery after three failures", timeout: .seconds(60)) {
                let recorded = try await d.count("SELECT count(*) AS n FROM webhook_deliveries WHERE state = 'delivered'")
                return !receiver.accepted.isEmpty && recorded == 1
            }
            let rows = try await d.db.query("SELECT state, attempts, webhook_id FROM webhook_deliveries")
            #expect(rows.count == 1)
            #expect(rows.first?.text("state") == "delivered")
            #expect(rows.first?.text("attempts") == "4")
            #expect(try await d.count("SELECT count(*) AS n FROM webhook_attempts") == 4)
            #expect(Set(receiver.deliveries.map(\.id)) == [rows.first?.text("webhook_id") ?? ""])
            #expect(Set(receiver.deliveries.map(\.body)).count == 1, "every attempt carried the same body")
            #expect(receiver.accepted.count == 1)

            // 400 fails at once; 410 disables the endpoint.
            receiver.answer([400])
            e.id = "exp-2"
            try await d.publish(e)
            try await waitFor("the 400") { try await d.count("SELECT count(*) AS n FROM webhook_deliveries WHERE state = 'failed'") == 1 }
            #expect(try await d.count("SELECT attempts AS n FROM webhook_deliveries WHERE event_id = 'exp-2'") == 1)

            // `almanac webhooks redeliver` sends the failed delivery again: same webhook-id, same body.
            let failed = try await d.db.query("SELECT id, webhook_id FROM webhook_deliveries WHERE event_id = 'exp-2'")
            let failedID = failed.first?.text("id") ?? "", webhookID = failed.first?.text("webhook_id") ?? ""
            let redeliver = try await d.almanac(["webhooks", "redeliver", failedID], token: token, remote: true)
            #expect(redeliver.status == 0, "\(redeliver.output)")
            try await waitFor("the redelivery to be recorded") {
                try await d.count("SELECT count(*) AS n FROM webhook_deliveries WHERE event_id = 'exp-2' AND state = 'delivered'") == 1
            }
            let sent = receiver.deliveries.filter { $0.id == webhookID }
            #expect(sent.map(\.status) == [400, 200])
            #expect(sent.allSatisfy { $0.signatureValid })
            #expect(Set(sent.map(\.body)).count == 1, "the redelivery carried the first attempt's body")
            #expect(try await d.count("SELECT attempts AS n FROM webhook_deliveries WHERE event_id = 'exp-2'") == 2)
            let unknown = try await d.almanac(["webhooks", "redeliver", "999999"], token: token, remote: true)
            #expect(unknown.status != 0)
            #expect(unknown.output.contains("404") && unknown.output.contains("tenant default has no delivery \"999999\""), "\(unknown.output)")
            receiver.answer([410])
            e.id = "exp-3"
            try await d.publish(e)
            try await waitFor("the 410") { try await d.count("SELECT count(*) AS n FROM webhook_endpoints WHERE disabled_at IS NOT NULL") == 1 }
            await d.shutdown()
        }
    }

    /// `almanac webhooks rotate-secret`: during the overlap each delivery carries a signature by
    /// the new secret and one by the old; after it, by the new one only.
    @Test func aRotatedSecretSignsBesideTheOldOneUntilTheOverlapEnds() async throws {
        let receiver = WebhookReceiver()
        try await receiver.serve { port in
            let d = try await TestDeployment(functions: [], pipeline: ["notify"])
            d.withAPI = true  // `almanac webhooks rotate-secret` goes through /v1
            let endpoint = try await Webhooks.add(tenant: "default", url: "http://127.0.0.1:\(port)/hook",
                                                  eventTypes: ["almanac.forecast.exported"], allowPrivate: true, in: d.db)
            let tokens = ["default": TenantDirectory.newToken(), "globex": TenantDirectory.newToken()]
            for (tenant, token) in tokens { try await TenantDirectory.ensure(tenant: tenant, token: token, in: d.db) }
            try await d.startControlPlane()
            func rotate(overlap: String, tenant: String = "default") async throws -> (status: Int32, secret: String, output: String) {
                let r = try await d.almanac(["webhooks", "rotate-secret", endpoint.id, "--overlap", overlap], token: tokens[tenant], remote: true)
                let secret = r.output.split(separator: "\n").first { $0.hasPrefix("secret ") }.map { String($0.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
                return (r.status, secret ?? "", r.output)
            }
            func deliver(_ id: String) async throws -> WebhookReceiver.Delivery {
                var e = CloudEvent(id: id, source: "test", type: "almanac.forecast.exported", subject: "shop",
                                   json: ["dataset": "shop", "forecast_id": "fc-1", "rows": 3, "csv": "/x.csv", "chart": "/x.svg"])
                e.tenant = "default"
                try await d.publish(e)
                try await waitFor("the delivery of \(id)") {
                    try await d.count("SELECT count(*) AS n FROM webhook_deliveries WHERE event_id = $1 AND state = 'delivered'", [id]) == 1
                }
                return try #require(receiver.accepted.last)
            }
            func verifies(_ secret: String, _ r: WebhookReceiver.Delivery) -> Bool {
                WebhookReceiver.verifies(secret: secret, id: r.id, timestamp: r.timestamp, signature: r.signature, body: r.body)
            }
            let other = try await rotate(overlap: "1h", tenant: "globex")
            #expect(other.status != 0 && other.output.contains("tenant globex has no webhook endpoint"), "\(other.output)")
            let bad = try await rotate(overlap: "30d")
            #expect(bad.status != 0 && bad.output.contains("between 0 and 7 days"), "\(bad.output)")

            let second = try await rotate(overlap: "1h")
            #expect(second.status == 0 && second.secret.hasPrefix("whsec_") && second.secret != endpoint.secret, "\(second.output)")
            receiver.secret = second.secret
            let during = try await deliver("rot-1")
            #expect(during.signature.split(separator: " ").count == 2)
            #expect(verifies(second.secret, during) && verifies(endpoint.secret, during), "both secrets sign during the overlap")

            let third = try await rotate(overlap: "0")
            receiver.secret = third.secret
            let after = try await deliver("rot-2")
            #expect(after.signature.split(separator: " ").count == 1)
            #expect(verifies(third.secret, after) && !verifies(second.secret, after) && !verifies(endpoint.secret, after))
            await d.shutdown()
        }
    }

    @Test("kill -9 of pipeline functions mid-run loses and duplicates nothing", arguments: [7, 19] as [UInt64])
    func killNineMidPipeline(seed: UInt64) async throws {
        var rng = SplitMix64(state: seed)
        let receiver = WebhookReceiver()
        try await receiver.serve { port in
            let d = try await TestDeployment(functions: [], pipeline: Self.functions)
            defer { killInstances(of: d) }
            let items = (0..<12).map { "I\($0)" }
            try await DatasetStore.create(Dataset(tenant: "default", name: "shop", horizon: 7, frequency: "daily"), in: d.db)
            let endpoint = try await Webhooks.add(tenant: "default", url: "http://127.0.0.1:\(port)/hook",
                                                  eventTypes: ["almanac.forecast.exported", "almanac.accuracy.breached"], allowPrivate: true, in: d.db)
            receiver.secret = endpoint.secret
            try await d.startControlPlane()
            try await arrive(d, try drop(d, "history.csv", rows(items: items, days: 0..<84)))
            // Kill function instances at random while the first arrival goes through the chain
            // to its export; then send the breaching second arrival and keep killing. In each
            // phase a function is killed at most twice, so no event uses up its three attempts
            // on kills alone (an event whose handling kills its process every time is
            // dead-lettered by design).
            var total = 0
            func chaos(until done: () async throws -> Bool, limit: Duration) async throws {
                var kills: [String: Int] = [:]
                let end = ContinuousClock.now + limit
                while ContinuousClock.now < end, !(try await done()) {
                    try await Task.sleep(for: .milliseconds(Int.random(in: 300...900, using: &rng)))
                    let victims = instancePIDs(of: d).filter { kills[functionName(of: $0), default: 0] < 2 }
                    if let pid = victims.randomElement(using: &rng) {
                        kills[functionName(of: pid), default: 0] += 1
                        total += 1
                        kill(pid, SIGKILL)
                    }
                }
            }
            try await chaos(until: {
                try await d.count("SELECT count(*) AS n FROM event_archive WHERE type = 'almanac.forecast.exported'") > 0
            }, limit: .seconds(120))
            try await arrive(d, try drop(d, "later.csv", rows(items: items, days: 84..<91, scale: 3)))
            try await chaos(until: { false }, limit: .seconds(8))
            try await waitFor("the retrained forecast's webhook", timeout: .seconds(180)) {
                let predictors = try await d.count("SELECT count(*) AS n FROM predictors")
                let forecasts = try await d.count("SELECT count(*) AS n FROM forecasts")
                let delivered = try await d.count("SELECT count(*) AS n FROM webhook_deliveries WHERE state = 'delivered'")
                let announced = try await d.count("""
                    SELECT count(*) AS n FROM event_archive WHERE type IN ('almanac.forecast.exported', 'almanac.accuracy.breached')
                    """)
                let latest = try await d.count("""
                    SELECT count(*) AS n FROM latest_forecasts l JOIN forecasts f ON f.id = l.forecast_id
                    JOIN predictors p ON p.id = f.predictor_id WHERE p.dataset_version = 2
                    """)
                return predictors == 2 && forecasts >= 3 && delivered == announced && latest == items.count * 7
            }
            #expect(total > 0)
            let dead = try await d.db.query("SELECT stage, error FROM dead_letters")
            #expect(dead.isEmpty, "dead letters: \(dead.map { ($0.text("stage") ?? "") + ": " + ($0.text("error") ?? "") })")
            // One predictor per version, each with every item; every forecast whole.
            #expect(try await d.count("SELECT count(*) AS n FROM predictor_items") == 2 * items.count)
            #expect(try await d.count("""
                SELECT count(*) AS n FROM (SELECT f.id FROM forecasts f LEFT JOIN forecast_points p ON p.forecast_id = f.id
                GROUP BY f.id HAVING count(p.*) <> \(items.count * 7)) broken
                """) == 0)
            #expect(try await d.count("SELECT count(DISTINCT forecast_id) AS n FROM latest_forecasts") == 1)
            #expect(try await d.count("SELECT count(*) AS n FROM accuracy_measurements") == 1)
            // Each delivery reached the receiver with one body per webhook-id.
            let delivered = Set(try await d.db.query("SELECT webhook_id FROM webhook_deliveries").compactMap { $0.text("webhook_id") })
            #expect(Set(receiver.accepted.map(\.id)) == delivered)
            var bodies: [String: Data] = [:]
            for r in receiver.deliveries {
                #expect(bodies[r.id] == nil || bodies[r.id] == r.body, "webhook-id \(r.id) arrived with two payloads")
                bodies[r.id] = r.body
            }
            #expect(receiver.deliveries.allSatisfy { $0.signatureValid })
            await d.shutdown()
        }
    }

    @Test func droppedFileIsAnnouncedAndIngested() async throws {
        var d = try await TestDeployment(functions: [], pipeline: ["ingest"])
        d.watchDropFolder = true
        try await DatasetStore.create(Dataset(tenant: "default", name: "shop", horizon: 7), in: d.db)
        try await d.startControlPlane()
        _ = try drop(d, "dropped.csv", rows(items: ["A"], days: 0..<10))
        try await waitFor("the dropped file's version") { try await d.count("SELECT count(*) AS n FROM dataset_versions") == 1 }
        #expect(try await d.count("SELECT count(*) AS n FROM observations") == 10)
        try await Task.sleep(for: .seconds(3))
        #expect(try await d.count("SELECT count(*) AS n FROM ingest_reports") == 1, "a file is announced once")
        await d.shutdown()
    }
}

/// The function an instance process runs (from its manifest path), or "".
func functionName(of pid: Int32) -> String {
    guard let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return "" }
    for entry in env.split(separator: 0) {
        let text = String(decoding: entry, as: UTF8.self)
        if text.hasPrefix("ALMANAC_FUNCTION_MANIFEST=") {
            return URL(fileURLWithPath: String(text.dropFirst("ALMANAC_FUNCTION_MANIFEST=".count))).deletingLastPathComponent().lastPathComponent
        }
    }
    return ""
}

/// Webhook signing, matching, address checks and the retry schedule, directly.
@Suite struct WebhookUnitTests {
    @Test func signatureMatchesTheStandardWebhooksExample() {
        // The example of the Standard Webhooks specification.
        let sig = Webhooks.signature(secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
                                     timestamp: 1_614_265_330, body: Data(#"{"test": 2432232314}"#.utf8))
        #expect(sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test func typesMatchExactlyOrByPrefix() {
        let e = WebhookEndpoint(id: "ep", tenant: "t", url: "http://x", eventTypes: ["almanac.forecast.*", "almanac.accuracy.breached"],
                                secret: "whsec_", allowPrivate: false)
        #expect(e.wants("almanac.forecast.created") && e.wants("almanac.forecast.exported") && e.wants("almanac.accuracy.breached"))
        #expect(!e.wants("almanac.dataset.imported") && !e.wants("almanac.accuracy.breachedX"))
    }

    @Test func privateAddressesAreRefusedUnlessAllowed() throws {
        for url in ["http://127.0.0.1:8080/h", "http://localhost/h", "http://10.1.2.3/h", "http://192.168.0.9/h", "http://172.20.0.1/h",
                    "http://169.254.169.254/latest", "http://[::1]/h", "http://[::ffff:127.0.0.1]/h", "http://0.0.0.0/h"] {
            #expect(throws: PipelineError.self, "\(url)") { try Webhooks.checkURL(url, allowPrivate: false) }
            try Webhooks.checkURL(url, allowPrivate: true)
        }
        #expect(throws: PipelineError.self) { try Webhooks.checkURL("ftp://example.com/x", allowPrivate: true) }
        #expect(!Webhooks.isPrivate("93.184.216.34") && !Webhooks.isPrivate("172.32.0.1"))
        #expect(Webhooks.isPrivate("::ffff:172.16.0.1") && Webhooks.isPrivate("::ffff:169.254.169.254") && !Webhooks.isPrivate("::ffff:93.184.216.34"))
    }

    @Test func checkedAddressesArePinnedForTheRequest() throws {
        // A name is pinned to every address it was checked against (no second lookup to rebind).
        #expect(Webhooks.pin(host: "hooks.example.com", port: 443, addresses: ["93.184.216.34", "2606:2800:220:1::1", "93.184.216.34"])
                == ["hooks.example.com:443:93.184.216.34,[2606:2800:220:1::1]"])
        // An IP literal cannot be rebound: nothing to pin.
        #expect(Webhooks.pin(host: "93.184.216.34", port: 80, addresses: ["93.184.216.34"]).isEmpty)
        let literal = try Webhooks.checkURL("http://93.184.216.34:8080/x", allowPrivate: false)
        #expect(literal.isEmpty)
        let allowed = try Webhooks.checkURL("http://localhost/x", allowPrivate: true)
        #expect(allowed.isEmpty)
    }

    @Test func retriesSpanAboutADayWithJitterAndHonourRetryAfter() {
        let s = RetrySchedule()
        let total = (1...7).compactMap { s.delay(after: $0) }.reduce(0, +)
        #expect(total > 20 * 3600 && total < 34 * 3600, "\(total / 3600) hours")
        #expect(s.delay(after: 8) == nil)
        #expect(s.delay(after: 1, retryAfter: 120) == 120)
        #expect(RetrySchedule.isRetriable(status: 503) && RetrySchedule.isRetriable(status: 429) && RetrySchedule.isRetriable(status: 408))
        #expect(RetrySchedule.isRetriable(status: nil), "timeouts and connection errors")
        #expect(!RetrySchedule.isRetriable(status: 400) && !RetrySchedule.isRetriable(status: 404) && !RetrySchedule.isRetriable(status: 410))
    }

    /// `Retry-After` from a receiver is whole seconds or an HTTP date; anything else is
    /// ignored, and no value can push a retry past the schedule's span (or trap).
    @Test func retryAfterIsSecondsOrAnHTTPDateClampedToTheHorizon() {
        let now = Date(timeIntervalSince1970: 1_795_428_000)  // 2026-11-23T10:00:00Z
        #expect(RetrySchedule.retryAfterSeconds("120", now: now) == 120)
        #expect(RetrySchedule.retryAfterSeconds(" 0 ", now: now) == 0)
        #expect(RetrySchedule.retryAfterSeconds("Mon, 23 Nov 2026 10:05:00 GMT", now: now) == 300)
        #expect(RetrySchedule.retryAfterSeconds("Monday, 23-Nov-26 10:01:00 GMT", now: now) == 60)
        #expect(RetrySchedule.retryAfterSeconds("Mon Nov 23 10:00:30 2026", now: now) == 30)
        #expect(RetrySchedule.retryAfterSeconds("Sun, 06 Nov 1994 08:49:37 GMT", now: now) == 0, "a date in the past: now")
        for junk in ["1e19", "-5", "1.5", "soon", "", "nan", "inf", String(repeating: "9", count: 100)] {
            let v = RetrySchedule.retryAfterSeconds(junk, now: now)
            #expect(v == nil || v! >= 0, "\(junk)")
        }
        #expect(RetrySchedule.retryAfterSeconds("1e19", now: now) == nil)
        let s = RetrySchedule()
        let huge = RetrySchedule.retryAfterSeconds("99999999999999999999", now: now)
        #expect(s.delay(after: 1, retryAfter: huge) == s.horizon, "clamped to the schedule's span")
        #expect(s.delay(after: 1, retryAfter: .infinity)! < 10)
        #expect(s.delay(after: 1, retryAfter: -.infinity)! < 10)
        #expect(abs(s.horizon - 99_305) < 1, "5 s + 5 min + 30 min + 2 h + 5 h + 10 h + 10 h")
    }
}
