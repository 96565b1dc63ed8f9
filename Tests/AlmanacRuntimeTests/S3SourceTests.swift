import AlmanacCore
import AlmanacHTTP
@testable import AlmanacPipeline
@testable import AlmanacAPI
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Testing

/// A real S3-compatible store for a test: moto's server in a child process
/// (`Tests/Support/s3_store.py`), checking every request's AWS Signature Version 4 against
/// the one key pair it made.
final class S3Store: @unchecked Sendable {
    let process = Process()
    let stdin = Pipe()
    let port: Int
    let accessKeyID: String
    let secretAccessKey: String
    var endpoint: String { "http://127.0.0.1:\(port)" }

    init(directory: String) throws {
        let ready = "\(directory)/s3-store.ready"
        try? FileManager.default.removeItem(atPath: ready)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "\(TestPaths.root)/Tests/Support/s3_store.py", ready]
        process.standardInput = stdin
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        var line: String?
        while line == nil && Date() < deadline && process.isRunning {
            line = try? String(contentsOfFile: ready, encoding: .utf8)
            if line == nil { Thread.sleep(forTimeInterval: 0.1) }
        }
        let parts = (line ?? "").split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        guard parts.count == 3, let port = Int(parts[0]) else {
            process.terminate()
            throw PipelineError("the S3 store (moto) did not start: is moto[server] installed (python/requirements-test.txt)?")
        }
        (self.port, accessKeyID, secretAccessKey) = (port, parts[1], parts[2])
    }

    /// Puts an object (boto3 signs it; the bucket is made when missing).
    /// - Returns: the store's HTTP status (403 for a wrong secret).
    func put(_ bucket: String, _ key: String, _ body: String, secret: String? = nil) throws -> Int {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("s3-put-\(UUID().uuidString)").path
        try body.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let r = try Subprocess.run("/usr/bin/env", ["python3", "\(TestPaths.root)/Tests/Support/s3_store.py", "put", String(port), accessKeyID,
                                                     secret ?? secretAccessKey, bucket, key, file])
        return Int(r.output.split(separator: "\n").last.map(String.init) ?? "") ?? -1
    }

    /// An object as the store has it, fetched signed by the fetcher ingest uses.
    func get(_ bucket: String, _ key: String) async throws -> String {
        var fetcher = DataFetcher()
        fetcher.allowPrivate = true
        let source = S3Source(tenant: "t", dataset: "d", bucket: bucket, endpoint: endpoint, credentials: "c")
        let file = try await fetcher.fetch(S3Object(bucket: bucket, key: key), from: source,
                                           credentials: S3Credentials(accessKeyID: accessKeyID, secretAccessKey: secretAccessKey), id: UUID().uuidString)
        defer { try? FileManager.default.removeItem(at: file) }
        return try String(contentsOf: file, encoding: .utf8)
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        process.terminate()
        process.waitUntilExit()
    }
}

/// Objects landing in an S3-compatible bucket start the pipeline: bucket notifications over
/// HTTP and from a Kafka topic become data arrivals through a tenant's source rule, ingest
/// fetches the object signed with the tenant's credentials, and the forecast's signed
/// webhook arrives; refusals (a wrong signature, a missing object, an object over the
/// dataset's bound, another tenant's bucket) each say why, and a notification delivered
/// twice is one import.
@Suite(.serialized) struct S3SourceTests {
    static func notification(_ bucket: String, _ key: String, size: Int, sequencer: String, minio: Bool = false) -> JSONValue {
        let encoded = key.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "/-_.~"))) ?? key
        let record: JSONValue = [
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": "2026-12-01T10:00:00.000Z",
            "eventName": .string(minio ? "s3:ObjectCreated:Put" : "ObjectCreated:Put"),
            "s3": ["s3SchemaVersion": "1.0", "bucket": ["name": .string(bucket), "arn": .string("arn:aws:s3:::\(bucket)")],
                   "object": ["key": .string(encoded), "size": .number(Double(size)), "eTag": "e", "sequencer": .string(sequencer)]],
        ]
        return minio ? ["EventName": "s3:ObjectCreated:Put", "Key": .string("\(bucket)/\(key)"), "Records": [record]] : ["Records": [record]]
    }

    static func series(days: Range<Int>) -> String {
        let start = Date(timeIntervalSince1970: 1_767_225_600)
        var csv = "item_id,timestamp,target_value\n"
        for (k, item) in ["A", "B", "C"].enumerated() {
            for day in days {
                let v = 100 + Double(k) * 20 + [0, 5, 10, 8, 3, -6, -12][day % 7] + Double(day % 5)
                csv += "\(item),\(RFC3339.format(start.addingTimeInterval(Double(day) * 86400)).prefix(10)),\(v)\n"
            }
        }
        return csv
    }

    @Test func bucketNotificationsOverHTTPAndKafkaRunThePipelineToASignedWebhook() async throws {
        let receiver = WebhookReceiver()
        try await receiver.serve { port in
            let d = try await TestDeployment(functions: [], pipeline: ["ingest", "train", "forecast", "export", "notify"])
            let store = try S3Store(directory: d.directory)
            defer { store.stop() }
            // The tenant's credentials: the right key pair in the environment, a wrong one as a mounted secret.
            try FileManager.default.createDirectory(atPath: "\(d.directory)/secrets/acme/bad-keys", withIntermediateDirectories: true)
            try store.accessKeyID.write(toFile: "\(d.directory)/secrets/acme/bad-keys/access_key_id", atomically: true, encoding: .utf8)
            try "not-the-secret".write(toFile: "\(d.directory)/secrets/acme/bad-keys/secret_access_key", atomically: true, encoding: .utf8)
            d.environment = ["ALMANAC_INGEST_ALLOW_PRIVATE": "1", "ALMANAC_SECRETS_DIR": "\(d.directory)/secrets",
                             "ALMANAC_S3_ACME_SHOP_STORE_ACCESS_KEY_ID": store.accessKeyID,
                             "ALMANAC_S3_ACME_SHOP_STORE_SECRET_ACCESS_KEY": store.secretAccessKey]
            d.withAPI = true
            try d.cluster.createTopic("s3-events", partitions: 1)
            d.extraRoutes = [S3NotificationRelay(topic: "s3-events", kafka: d.cluster.configuration, databaseURL: d.databaseURL)]
            let acme = try await TenantDirectory.create(tenant: "acme", in: d.db).token
            let globex = try await TenantDirectory.create(tenant: "globex", in: d.db).token
            try await d.startControlPlane()
            let api = APITests.Client(base: try await d.ingressURL())

            #expect(try await api.send("POST", "/v1/datasets", token: acme, json: ["name": "shop", "horizon": 7, "frequency": "daily"]).status == 201)
            #expect(try await api.send("POST", "/v1/datasets", token: acme, json: ["name": "tiny", "horizon": 7, "max_file_bytes": 1000]).status == 201)
            let (_, endpoint) = try await api.object("POST", "/v1/webhooks", token: acme, json: [
                "url": .string("http://127.0.0.1:\(port)/hook"), "events": ["almanac.forecast.exported"], "allow_private": true])
            receiver.secret = try #require(endpoint["secret"]?.stringValue)

            // Source rules: through the command (as the tenant), refused where they are wrong.
            func rule(_ args: [String], _ token: String = acme) async throws -> (status: Int32, output: String) {
                try await d.almanac(["s3-sources", "add"] + args, token: token, remote: true)
            }
            let added = try await rule(["shop", "--bucket", "shop-data", "--prefix", "sales/", "--endpoint", store.endpoint, "--credentials", "shop-store"])
            #expect(added.status == 0 && added.output.contains("s3://shop-data/sales/* → dataset shop"), "\(added.output)")
            #expect(try await rule(["shop", "--bucket", "shop-data", "--prefix", "wrong/", "--endpoint", store.endpoint, "--credentials", "bad-keys"]).status == 0)
            #expect(try await rule(["tiny", "--bucket", "shop-data", "--prefix", "tiny/", "--endpoint", store.endpoint, "--credentials", "shop-store"]).status == 0)
            let taken = try await rule(["shop", "--bucket", "shop-data", "--prefix", "sales/", "--endpoint", store.endpoint, "--credentials", "x"], globex)
            #expect(taken.status != 0 && taken.output.contains("404"), "globex has no dataset shop: \(taken.output)")
            let badBucket = try await rule(["shop", "--bucket", "Shop_Data", "--endpoint", store.endpoint, "--credentials", "shop-store"])
            #expect(badBucket.status != 0 && badBucket.output.contains("not an S3 bucket name"), "\(badBucket.output)")
            let badEndpoint = try await rule(["shop", "--bucket", "shop-data", "--prefix", "x/", "--endpoint", "ftp://store", "--credentials", "shop-store"])
            #expect(badEndpoint.status != 0 && badEndpoint.output.contains("endpoint"), "\(badEndpoint.output)")
            let listed = try await d.almanac(["s3-sources", "list", "shop"], token: acme, remote: true)
            #expect(listed.output.contains("sales/") && listed.output.contains("wrong/") && !listed.output.contains(store.secretAccessKey), "\(listed.output)")

            // The bucket and its objects, put with signed requests (moto refuses unsigned ones).
            let history = Self.series(days: 0..<56)
            #expect(try store.put("shop-data", "sales/2026 11.csv", history) == 200)
            #expect(try await store.get("shop-data", "sales/2026 11.csv") == history, "the signed fetch reads the object whole")
            #expect(try store.put("shop-data", "sales/x.csv", "a", secret: "forged") == 403, "the store checks signatures")

            // 1. A notification over HTTP: one arrival; the same notification again is the same event.
            let first = Self.notification("shop-data", "sales/2026 11.csv", size: history.utf8.count, sequencer: "0055AED6DCD90281E5")
            let (s1, a1) = try await api.object("POST", "/v1/s3/notifications", token: acme, json: first)
            #expect(s1 == 202, "\(a1.serialized())")
            let importID = try #require(a1["accepted"]?.arrayValue?.first?["id"]?.stringValue)
            #expect(a1["accepted"]?.arrayValue?.first?["url"]?.stringValue == "s3://shop-data/sales/2026 11.csv")
            let (_, a2) = try await api.object("POST", "/v1/s3/notifications", token: acme, json: first)
            #expect(a2["accepted"]?.arrayValue?.first?["id"]?.stringValue == importID)
            // Another tenant's notification for acme's bucket makes nothing.
            let (s3, theirs) = try await api.object("POST", "/v1/s3/notifications", token: globex, json: first)
            #expect(s3 == 202 && theirs["accepted"]?.arrayValue?.isEmpty == true && theirs["ignored"]?.arrayValue?.count == 1, "\(theirs.serialized())")

            // 2. The forecast's signed webhook; one import for the two notifications.
            try await waitFor("the exported webhook", timeout: .seconds(180)) { receiver.accepted.contains { $0.type == "almanac.forecast.exported" } }
            #expect(receiver.accepted.first { $0.type == "almanac.forecast.exported" }?.signatureValid == true)
            let (_, state) = try await api.object("GET", "/v1/datasets/shop/imports/\(importID)", token: acme)
            #expect(state["status"]?.stringValue == "accepted" && state["version"]?.intValue == 1, "\(state.serialized())")
            #expect(try await d.count("SELECT count(*) AS n FROM ingest_reports WHERE tenant = 'acme' AND dataset = 'shop'") == 1)
            #expect(try await d.count("SELECT count(*) AS n FROM observations WHERE tenant = 'acme' AND dataset = 'shop'") == 3 * 56)

            // 3. From the Kafka topic (MinIO's shape): a record that is not a notification is
            // skipped, the next one becomes version 2 of the dataset it maps to.
            let later = Self.series(days: 56..<63)
            #expect(try store.put("shop-data", "sales/2026-12.csv", later) == 200)
            try await d.publishRaw(value: Data("not a notification".utf8), topic: "s3-events")
            let minio = Self.notification("shop-data", "sales/2026-12.csv", size: later.utf8.count, sequencer: "0055AED6DCD90281F1", minio: true)
            try await d.publishRaw(value: minio.serializedData(), topic: "s3-events")
            try await waitFor("version 2 from the topic", timeout: .seconds(120)) {
                try await d.count("SELECT count(*) AS n FROM dataset_versions WHERE tenant = 'acme' AND dataset = 'shop'") == 2
            }

            // 4. Refusals, each with the store's reason: no such object, a wrong signature, over the bound.
            func rejected(_ dataset: String, _ key: String, size: Int) async throws -> String {
                let (_, a) = try await api.object("POST", "/v1/s3/notifications", token: acme,
                                                  json: Self.notification("shop-data", key, size: size, sequencer: key))
                let id = try #require(a["accepted"]?.arrayValue?.first?["id"]?.stringValue, "\(a.serialized())")
                var answer = JSONValue.null
                try await waitFor("the import of \(key)", timeout: .seconds(60)) {
                    answer = try await api.object("GET", "/v1/datasets/\(dataset)/imports/\(id)", token: acme).1
                    return answer["status"]?.stringValue == "rejected"
                }
                return answer["report"]?["reason"]?.stringValue ?? ""
            }
            let missing = try await rejected("shop", "sales/missing.csv", size: 10)
            #expect(missing.contains("404") && missing.contains("NoSuchKey") && missing.contains("s3://shop-data/sales/missing.csv"), "\(missing)")
            #expect(try store.put("shop-data", "wrong/data.csv", history) == 200)
            let forged = try await rejected("shop", "wrong/data.csv", size: history.utf8.count)
            #expect(forged.contains("403") && forged.contains("SignatureDoesNotMatch") && forged.contains("bad-keys"), "\(forged)")
            #expect(try store.put("shop-data", "tiny/big.csv", history) == 200)
            let big = try await rejected("tiny", "tiny/big.csv", size: history.utf8.count)
            #expect(big.contains("larger than the limit of 1000 bytes"), "\(big)")
            #expect(try await d.count("SELECT count(*) AS n FROM dead_letters") == 0, "every arrival reached ingest")
            #expect(!d.log("ingest").contains(store.secretAccessKey), "the secret is never logged")
            #expect(try await d.count("SELECT count(*) AS n FROM event_archive WHERE event::text LIKE '%' || $1 || '%'", [store.secretAccessKey]) == 0)
            await d.shutdown()
        }
    }

    @Test func notificationsAreReadStrictly() throws {
        let aws = try S3Notifications.created(in: Self.notification("shop-data", "a b/c+d.csv", size: 5, sequencer: "1"))
        #expect(aws == [.init(object: S3Object(bucket: "shop-data", key: "a b/c+d.csv"), size: 5, version: "1")])
        let bridge = try S3Notifications.created(in: ["detail-type": "Object Created", "source": "aws.s3",
                                                      "detail": ["bucket": ["name": "shop-data"], "object": ["key": "x/y.csv", "size": 3, "sequencer": "9"]]])
        #expect(bridge.map(\.object.key) == ["x/y.csv"])
        #expect(try S3Notifications.created(in: ["Records": [["eventName": "ObjectRemoved:Delete", "s3": [:]]]]).isEmpty)
        #expect(try S3Notifications.created(in: ["Service": "Amazon S3", "Event": "s3:TestEvent"]).isEmpty)
        #expect { try S3Notifications.created(in: ["nothing": 1]) } throws: { "\($0)".contains("no Records") }
        #expect { try S3Notifications.created(in: ["Records": [["eventName": "ObjectCreated:Put", "s3": ["bucket": ["name": "shop-data"]]]]]) } throws: {
            "\($0)".contains("Records[0].s3.object.key")
        }
        #expect { try S3Notifications.created(in: ["Records": [["eventName": "ObjectCreated:Put", "s3": ["bucket": ["name": "A"], "object": ["key": "k"]]]]]) } throws: {
            "\($0)".contains("bucket.name")
        }
        #expect { try S3Notifications.created(in: ["Records": .array(Array(repeating: ["eventName": "x"], count: 1001))]) } throws: { "\($0)".contains("at most 1000") }
        // The event id follows the object's version: the same notification, the same id; a new version, a new one.
        let again = try S3Notifications.created(in: Self.notification("shop-data", "a b/c+d.csv", size: 5, sequencer: "1"))
        let newer = try S3Notifications.created(in: Self.notification("shop-data", "a b/c+d.csv", size: 5, sequencer: "2"))
        #expect(S3Notifications.eventID(aws[0]) == S3Notifications.eventID(again[0]))
        #expect(S3Notifications.eventID(aws[0]) != S3Notifications.eventID(newer[0]))
    }

    @Test func objectURLsAndRulesAreChecked() throws {
        let source = S3Source(tenant: "acme", dataset: "shop", bucket: "shop-data", endpoint: "https://s3.eu-west-1.amazonaws.com/", region: "eu-west-1",
                              pathStyle: false, credentials: "aws")
        let object = try S3Object(location: "s3://shop-data/sales/2026 11+ä.csv")
        #expect(object.url(at: source) == "https://shop-data.s3.eu-west-1.amazonaws.com/sales/2026%2011%2B%C3%A4.csv")
        var path = source
        path.pathStyle = true
        #expect(object.url(at: path) == "https://s3.eu-west-1.amazonaws.com/shop-data/sales/2026%2011%2B%C3%A4.csv")
        #expect(source.problem == nil)
        for bad in ["s3://", "s3://shop-data", "s3://shop-data/", "s3://Bad_Bucket/k", "http://x/y", "s3://shop-data/a\u{01}b"] {
            #expect(throws: PipelineError.self, "\(bad)") { try S3Object(location: bad) }
        }
        var r = source
        r.endpoint = "https://store/path"
        #expect(r.problem?.contains("without path") == true)
        r = source
        r.credentials = "../other-tenant"
        #expect(r.problem != nil, "a secret's name cannot leave the tenant's folder")
        #expect { try S3Credentials.resolve("x", tenant: "acme", environment: [:]) } throws: {
            "\($0)".contains("ALMANAC_S3_ACME_X_ACCESS_KEY_ID")
        }
        let fromEnv = try S3Credentials.resolve("shop-store", tenant: "acme", environment: [
            "ALMANAC_S3_ACME_SHOP_STORE_ACCESS_KEY_ID": "AK", "ALMANAC_S3_ACME_SHOP_STORE_SECRET_ACCESS_KEY": "SK"])
        #expect(fromEnv.accessKeyID == "AK" && fromEnv.secretAccessKey == "SK" && fromEnv.sessionToken == nil)
        #expect(DataFetcher.storeError("<Error><Code>NoSuchKey</Code><Message>The key does not exist</Message></Error>")
                == " (NoSuchKey: The key does not exist)")
    }
}
