import AlmanacCore
import AlmanacHTTP
@testable import AlmanacPipeline
@testable import AlmanacAPI
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Testing

/// The `/v1` API over real HTTP against the ingress's server, real Postgres and Kafka.
@Suite(.serialized) struct APITests {
    struct Client {
        let base: String
        let http = HTTPClient()

        func send(_ method: String, _ path: String, token: String?, json: JSONValue? = nil, accept: String? = nil)
            async throws -> (status: Int, body: String, headers: [(String, String)]) {
            var headers: [(String, String)] = token.map { [("Authorization", "Bearer \($0)")] } ?? []
            if json != nil { headers.append(("Content-Type", "application/json")) }
            if let accept { headers.append(("Accept", accept)) }
            let r = try await http.send(HTTPClientRequest(method: method, url: base + path, headers: headers, body: json?.serializedData() ?? Data()))
            return (r.status, String(decoding: r.body, as: UTF8.self), r.headers)
        }

        func object(_ method: String, _ path: String, token: String?, json: JSONValue? = nil) async throws -> (Int, JSONValue) {
            let r = try await send(method, path, token: token, json: json)
            return (r.status, (try? JSONValue(parsing: r.body)) ?? .null)
        }
    }

    /// A deployment serving the API, with tenants acme (admin and read tokens) and globex (admin).
    func deployment(rateLimit: Double? = nil, pipeline: [String] = []) async throws -> (TestDeployment, Client, acme: String, acmeRead: String, globex: String) {
        var d = try await TestDeployment(functions: [], pipeline: pipeline)
        d.withAPI = true
        d.rateLimit = rateLimit
        let acme = try await TenantDirectory.create(tenant: "acme", in: d.db).token
        let acmeRead = try await TenantDirectory.createToken(tenant: "acme", scope: .read, expires: nil, in: d.db).token
        let globex = try await TenantDirectory.create(tenant: "globex", in: d.db).token
        try await d.startControlPlane()
        return (d, Client(base: try await d.ingressURL()), acme, acmeRead, globex)
    }

    /// A stored forecast of `acme/sales` for items A, B, C over two days, live in `latest_forecasts`.
    func storeForecast(_ d: TestDeployment) async throws {
        try await storeForecast(d, tenant: "acme", id: "f1", predictor: "p1", base: 10)
    }

    /// A forecast `id` of `tenant/sales` for items A, B, C over two days (item k's values
    /// `base·k` and `base·k + 1`), made live in `latest_forecasts` as export does it: the
    /// dataset's rows replaced in one transaction.
    func storeForecast(_ d: TestDeployment, tenant: String, id: String, predictor: String, base: Double) async throws {
        try await d.db.exec("""
            INSERT INTO predictors (id, tenant, dataset, dataset_version, trigger_event, items, metrics) VALUES ($1, $2, 'sales', 1, $3, 3, '{}')
            """, [predictor, tenant, "t-" + id])
        try await d.db.exec("""
            INSERT INTO forecasts (id, tenant, dataset, predictor_id, dataset_version, trigger_event, quantiles, items)
            VALUES ($1, $2, 'sales', $3, 1, $4, '{0.1,0.5,0.9}', 3)
            """, [id, tenant, predictor, "t-" + id])
        try await d.db.exec("""
            INSERT INTO forecast_points (forecast_id, item_id, ts, mean, q)
            SELECT $1, i, t, v, ARRAY[v - 1, v, v + 1]
            FROM unnest(ARRAY['A', 'B', 'C']) WITH ORDINALITY AS x(i, k),
                 LATERAL (VALUES ('2026-01-01T00:00:00Z'::timestamptz, $2::float8 * k), ('2026-01-02T00:00:00Z'::timestamptz, $2::float8 * k + 1)) AS y(t, v)
            """, [id, base])
        try await d.db.transaction { tx in
            try await tx.execute("DELETE FROM latest_forecasts WHERE tenant = $1 AND dataset = 'sales'", [tenant])
            try await tx.execute("""
                INSERT INTO latest_forecasts (tenant, dataset, item_id, ts, forecast_id, quantiles, q, mean)
                SELECT $1, 'sales', item_id, ts, forecast_id, '{0.1,0.5,0.9}', q, mean FROM forecast_points WHERE forecast_id = $2
                """, [tenant, id])
        }
    }

    /// The QueryForecast path keeps rendered answers by forecast id: a repeated query is served
    /// from memory, yet a new live forecast, another tenant's same-named dataset, a revoked
    /// token and a deleted dataset are each seen on the very next request.
    @Test func keptAnswersAreNeverStaleNorAnotherTenantsNorARevokedTokens() async throws {
        let (d, api, acme, _, globex) = try await deployment()
        for token in [acme, globex] {
            #expect(try await api.send("POST", "/v1/datasets", token: token, json: ["name": "sales", "horizon": 2, "frequency": "daily"]).status == 201)
        }
        try await storeForecast(d, tenant: "acme", id: "f1", predictor: "p1", base: 10)
        try await storeForecast(d, tenant: "globex", id: "g1", predictor: "pg1", base: 1000)
        let reader = try await TenantDirectory.createToken(tenant: "acme", scope: .read, expires: nil, in: d.db)
        func p50s(_ token: String) async throws -> (String?, [Double]) {
            let (status, doc) = try await api.object("GET", "/v1/datasets/sales/forecast?item=B", token: token)
            #expect(status == 200, "\(doc.serialized())")
            return (doc["forecast_id"]?.stringValue, doc["items"]?.arrayValue?.first?["points"]?.arrayValue?.compactMap { $0["p50"]?.numberValue } ?? [])
        }
        func csv(_ token: String) async throws -> (body: String, id: String?) {
            let r = try await api.send("GET", "/v1/datasets/sales/forecast?item=B", token: token, accept: "text/csv")
            #expect(r.status == 200)
            return (r.body, r.headers.first { $0.0.lowercased() == "almanac-forecast-id" }?.1)
        }
        // Asked twice (rendered, then kept): the same answer, in each format.
        let once = try await p50s(reader.token), twice = try await p50s(reader.token)
        #expect(once.0 == "f1" && once.1 == [20, 21] && twice.0 == once.0 && twice.1 == once.1)
        let csvOnce = try await csv(acme), csvTwice = try await csv(acme)
        #expect(csvOnce.body == "item_id,date,p10,p50,p90\nB,2026-01-01T00:00:00.000Z,19.0,20.0,21.0\nB,2026-01-02T00:00:00.000Z,20.0,21.0,22.0\n"
                && csvTwice.body == csvOnce.body && csvTwice.id == "f1", "\(csvTwice)")
        // Globex's dataset of the same name and item: its own forecast, before and after acme's were kept.
        let theirs = try await p50s(globex)
        #expect(theirs.0 == "g1" && theirs.1 == [2000, 2001])
        // A new live forecast: the next request answers it, as JSON and as CSV.
        try await storeForecast(d, tenant: "acme", id: "f2", predictor: "p2", base: 50)
        let fresh = try await p50s(reader.token)
        #expect(fresh.0 == "f2" && fresh.1 == [100, 101], "\(fresh)")
        let freshCSV = try await csv(acme)
        #expect(freshCSV.id == "f2" && freshCSV.body.contains("B,2026-01-01T00:00:00.000Z,99.0,100.0,101.0"), "\(freshCSV)")
        #expect(try await p50s(globex).1 == [2000, 2001])
        // A revoked token fails its next request, kept answer or not.
        #expect(try await TenantDirectory.revoke(tokenID: reader.id, in: d.db))
        #expect(try await api.send("GET", "/v1/datasets/sales/forecast?item=B", token: reader.token).status == 401)
        // A deleted dataset: not found, though its answer was kept.
        #expect(try await api.send("DELETE", "/v1/datasets/sales", token: acme).status == 204)
        let gone = try await api.send("GET", "/v1/datasets/sales/forecast?item=B", token: acme)
        #expect(gone.status == 404, "\(gone.body)")
        await d.shutdown()
    }

    @Test func datasetsAndForecastsForTheTokensTenantOnly() async throws {
        let (d, api, acme, acmeRead, globex) = try await deployment(pipeline: ["ingest"])
        // Create: 201 with Location; again 409; a read token 403; no token 401.
        let created = try await api.send("POST", "/v1/datasets", token: acme, json: ["name": "sales", "horizon": 2, "frequency": "daily"])
        #expect(created.status == 201, "\(created.body)")
        #expect(created.headers.contains { $0.0.lowercased() == "location" && $0.1 == "/v1/datasets/sales" })
        let made = try JSONValue(parsing: created.body)
        #expect(made["horizon"]?.intValue == 2 && made["frequency"]?.stringValue == "daily" && made["latest_version"] == .null)
        #expect(try await api.send("POST", "/v1/datasets", token: acme, json: ["name": "sales", "horizon": 2]).status == 409)
        #expect(try await api.send("POST", "/v1/datasets", token: acmeRead, json: ["name": "other", "horizon": 2]).status == 403)
        #expect(try await api.send("POST", "/v1/datasets", token: nil, json: ["name": "other", "horizon": 2]).status == 401)
        // Bad bodies: 400, saying what is wrong.
        for (body, says) in [
            (["name": "x", "horizon": "2"], "horizon must be a whole number"),
            (["name": "x"], "horizon is required"),
            (["name": "x", "horizon": 2, "colour": "red"], "unknown member \"colour\""),
            (["name": "../x", "horizon": 2], "dataset name \"../x\" is invalid"),
            (["name": "x", "horizon": 2, "quantiles": [2]], "quantiles must be"),
            (["name": "x", "horizon": 2, "frequency": "fortnightly"], "frequency must be one of"),
            (["name": "x", "horizon": 0], "horizon must be between 1 and 10000"),
            (["name": "x", "horizon": 2, "max_error_rate": 5], "max_error_rate must be between 0 and 1"),
            ([1, 2], "must be a JSON object"),
        ] as [(JSONValue, String)] {
            let (status, problem) = try await api.object("POST", "/v1/datasets", token: acme, json: body)
            #expect(status == 400 && (problem["detail"]?.stringValue ?? "").contains(says), "\(body.serialized()): \(status) \(problem.serialized())")
        }
        let notJSON = try await api.http.send(HTTPClientRequest(method: "POST", url: api.base + "/v1/datasets",
                                                                headers: [("Authorization", "Bearer \(acme)")], body: Data("{nope".utf8)))
        #expect(notJSON.status == 400 && String(decoding: notJSON.body, as: UTF8.self).contains("the body is not JSON"))
        let huge = try await api.http.send(HTTPClientRequest(method: "POST", url: api.base + "/v1/datasets",
                                                             headers: [("Authorization", "Bearer \(acme)")], body: Data(repeating: 0x20, count: 100_000)))
        #expect(huge.status == 413)

        // Lists page with a cursor; each tenant sees its own.
        for name in ["beta", "gamma", "delta"] {
            #expect(try await api.send("POST", "/v1/datasets", token: acme, json: ["name": .string(name), "horizon": 3]).status == 201)
        }
        var names: [String] = [], cursor: String?, pages = 0
        repeat {
            let (status, page) = try await api.object("GET", "/v1/datasets?limit=3" + (cursor.map { "&cursor=\($0)" } ?? ""), token: acmeRead)
            #expect(status == 200)
            names += page["items"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            cursor = page["next_cursor"]?.stringValue
            pages += 1
        } while cursor != nil && pages < 5
        #expect(names == ["beta", "delta", "gamma", "sales"] && pages == 2)
        let (_, theirs) = try await api.object("GET", "/v1/datasets", token: globex)
        #expect(theirs["items"]?.arrayValue?.isEmpty == true)
        #expect(try await api.send("GET", "/v1/datasets?limit=0", token: acme).status == 400)
        #expect(try await api.send("GET", "/v1/datasets?cursor=%%%", token: acme).status == 400)
        #expect(try await api.send("GET", "/v1/datasets/sales", token: globex).status == 404, "another tenant's dataset is not found")

        // The forecast: one item as JSON and as CSV, pages of items, a given forecast id.
        try await storeForecast(d)
        let (status, one) = try await api.object("GET", "/v1/datasets/sales/forecast?item=B", token: acmeRead)
        #expect(status == 200 && one["forecast_id"]?.stringValue == "f1")
        let points = one["items"]?.arrayValue?.first?["points"]?.arrayValue ?? []
        #expect(one["items"]?.arrayValue?.count == 1 && points.count == 2)
        #expect(points.first?["timestamp"]?.stringValue == "2026-01-01T00:00:00.000Z" && points.first?["p50"]?.numberValue == 20
                && points.first?["p10"]?.numberValue == 19 && points.last?["p90"]?.numberValue == 22)
        let csv = try await api.send("GET", "/v1/datasets/sales/forecast?item=B", token: acme, accept: "text/csv")
        #expect(csv.status == 200 && csv.body == "item_id,date,p10,p50,p90\nB,2026-01-01T00:00:00.000Z,19.0,20.0,21.0\nB,2026-01-02T00:00:00.000Z,20.0,21.0,22.0\n",
                "\(csv.body)")
        #expect(csv.headers.contains { $0.0.lowercased() == "almanac-forecast-id" && $0.1 == "f1" })
        let (_, first) = try await api.object("GET", "/v1/datasets/sales/forecast?limit=2", token: acme)
        #expect(first["items"]?.arrayValue?.compactMap { $0["item_id"]?.stringValue } == ["A", "B"])
        let next = try #require(first["next_cursor"]?.stringValue)
        let (_, rest) = try await api.object("GET", "/v1/datasets/sales/forecast?limit=2&cursor=\(next)", token: acme)
        #expect(rest["items"]?.arrayValue?.compactMap { $0["item_id"]?.stringValue } == ["C"] && rest["next_cursor"] == .null)
        #expect(try await api.object("GET", "/v1/datasets/sales/forecast?forecast_id=f1&item=A", token: acme).0 == 200)
        #expect(try await api.send("GET", "/v1/datasets/sales/forecast?item=Z", token: acme).status == 404)
        #expect(try await api.send("GET", "/v1/datasets/beta/forecast", token: acme).status == 404)
        #expect(try await api.send("GET", "/v1/datasets/sales/forecast", token: globex).status == 404)
        let (_, shown) = try await api.object("GET", "/v1/datasets/sales", token: acme)
        #expect(shown["live_forecast_id"]?.stringValue == "f1" && shown["versions"]?.arrayValue != nil)

        // Events through /v1/events are the tenant's.
        let e = CloudEvent(id: "v1-1", source: "erp", type: "test.api", json: ["n": 1])
        let posted = try await api.http.send(HTTPClientRequest(method: "POST", url: api.base + "/v1/events",
                                                               headers: [("Authorization", "Bearer \(acme)"), ("Content-Type", cloudEventsJSONType)],
                                                               body: e.structuredJSON().serializedData()))
        #expect(posted.status == 202)
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM event_archive WHERE id = 'v1-1' AND tenant = 'acme'", atLeast: 1) == 1)
        // A dead letter of the tenant's: listed and shown to it alone, and redriven.
        let bad = CloudEvent(id: "v1-bad", source: "erp", type: "almanac.data.arrived", json: ["dataset": "sales", "url": "x", "colour": "red"])
        #expect(try await api.http.send(HTTPClientRequest(method: "POST", url: api.base + "/v1/events",
                                                          headers: [("Authorization", "Bearer \(acme)"), ("Content-Type", cloudEventsJSONType)],
                                                          body: bad.structuredJSON().serializedData())).status == 202)
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM dead_letters WHERE event_id = 'v1-bad'", atLeast: 1) == 1)
        let (_, letters) = try await api.object("GET", "/v1/deadletters", token: acmeRead)
        let letter = try #require(letters["items"]?.arrayValue?.first)
        #expect(letter["event_id"]?.stringValue == "v1-bad" && letter["error_code"]?.stringValue == "schema_violation", "\(letters.serialized())")
        let letterID = try #require(letter["id"]?.intValue)
        let (_, shownLetter) = try await api.object("GET", "/v1/deadletters/\(letterID)", token: acme)
        #expect(shownLetter["record"]?.stringValue?.contains("colour") == true)
        let (_, none) = try await api.object("GET", "/v1/deadletters", token: globex)
        #expect(none["items"]?.arrayValue?.isEmpty == true)
        #expect(try await api.send("GET", "/v1/deadletters/\(letterID)", token: globex).status == 404)
        #expect(try await api.send("POST", "/v1/deadletters/\(letterID)/redrive", token: globex).status == 404)
        #expect(try await api.send("POST", "/v1/deadletters/\(letterID)/redrive", token: acmeRead).status == 403)
        #expect(try await api.send("POST", "/v1/deadletters/\(letterID)/redrive", token: acme).status == 202)
        #expect(try await api.send("POST", "/v1/deadletters/\(letterID)/redrive", token: acme).status == 404, "a letter is redriven once")
        let (_, redriven) = try await api.object("GET", "/v1/deadletters?status=redriven", token: acme)
        #expect(redriven["items"]?.arrayValue?.compactMap { $0["id"]?.intValue }.contains(letterID) == true)
        // Predictors and accuracy of a dataset: empty here, another tenant's 404.
        #expect(try await api.object("GET", "/v1/datasets/sales/predictors", token: acme).1["items"]?.arrayValue?.count == 1)
        #expect(try await api.object("GET", "/v1/datasets/sales/accuracy", token: acme).1["items"]?.arrayValue?.isEmpty == true)
        #expect(try await api.send("GET", "/v1/datasets/sales/predictors", token: globex).status == 404)
        // The document is served without a token.
        let doc = try await api.object("GET", "/v1/openapi.json", token: nil)
        #expect(doc.0 == 200 && doc.1["openapi"]?.stringValue == "3.1.0")
        await d.shutdown()
    }

    /// `POST /v1/datasets/{name}/data` streams the file into the checked ingest; the import's
    /// state is read back from `GET /v1/datasets/{name}/imports/{id}`.
    @Test func uploadsGoThroughTheCheckedIngest() async throws {
        let (d, api, acme, acmeRead, globex) = try await deployment(pipeline: ["ingest"])
        #expect(try await api.send("POST", "/v1/datasets", token: acme, json: ["name": "sales", "horizon": 2]).status == 201)
        #expect(try await api.send("POST", "/v1/datasets", token: acme, json: ["name": "tiny", "horizon": 2, "max_file_bytes": 100]).status == 201)
        func upload(_ dataset: String, _ body: String, token: String, type: String = "text/csv") async throws -> (Int, JSONValue) {
            let r = try await api.http.send(HTTPClientRequest(method: "POST", url: api.base + "/v1/datasets/\(dataset)/data",
                                                              headers: [("Authorization", "Bearer \(token)"), ("Content-Type", type)], body: Data(body.utf8)))
            return (r.status, (try? JSONValue(parsing: Data(r.body))) ?? .null)
        }
        func settled(_ id: String) async throws -> JSONValue {
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                let (status, state) = try await api.object("GET", "/v1/datasets/sales/imports/\(id)", token: acmeRead)
                #expect(status == 200, "\(state.serialized())")
                if state["status"]?.stringValue != "pending" { return state }
                try await Task.sleep(for: .milliseconds(100))
            }
            Issue.record("import \(id) still pending")
            return .null
        }
        var csv = "item_id,timestamp,target_value\n"
        for item in ["A", "B"] { for day in 1...9 { csv += "\(item),2026-01-0\(day),\(day)\n" } }
        let (status, answer) = try await upload("sales", csv, token: acme)
        #expect(status == 202, "\(answer.serialized())")
        let id = try #require(answer["import_id"]?.stringValue)
        let done = try await settled(id)
        #expect(done["status"]?.stringValue == "accepted" && done["version"]?.intValue == 1 && done["report"]?["rows_read"]?.intValue == 18,
                "\(done.serialized())")
        #expect(try await d.count("SELECT count(*) AS n FROM observations WHERE tenant = 'acme' AND dataset = 'sales'") == 18)
        // A bad file is rejected with its bad rows by line; the data stays as it was.
        let (_, bad) = try await upload("sales", "item_id,timestamp,target_value\nA,2026-01-10,n/a\nA,not a time,3\n", token: acme)
        let rejected = try await settled(try #require(bad["import_id"]?.stringValue))
        #expect(rejected["status"]?.stringValue == "rejected", "\(rejected.serialized())")
        #expect(rejected["report"]?["problems"]?.arrayValue?.first?["line"]?.intValue == 2, "\(rejected.serialized())")
        #expect(try await d.count("SELECT count(*) AS n FROM observations WHERE tenant = 'acme' AND dataset = 'sales'") == 18)
        // Refusals: a media type that is not a data file, over the dataset's bound, another
        // tenant's dataset, a read token.
        #expect(try await upload("sales", "{}", token: acme, type: "application/json").0 == 415)
        #expect(try await upload("tiny", String(repeating: "A,2026-01-01,1\n", count: 20), token: acme).0 == 413)
        #expect(try await upload("sales", csv, token: globex).0 == 404)
        #expect(try await upload("sales", csv, token: acmeRead).0 == 403)
        #expect(try await api.send("GET", "/v1/datasets/sales/imports/\(id)", token: globex).status == 404)
        #expect(try await api.send("GET", "/v1/datasets/sales/imports/nope", token: acme).status == 404)
        let left = try FileManager.default.contentsOfDirectory(atPath: "\(d.dropDirectory)/acme/tiny")
        #expect(left.isEmpty, "a refused upload leaves no file: \(left)")
        await d.shutdown()
    }

    @Test func eachTenantHasARequestRate() async throws {
        // One a second, bursts of two: 20 requests can all pass only if each took over a second.
        let (d, api, acme, _, globex) = try await deployment(rateLimit: 1)
        var statuses: [Int] = [], retryAfter: [String] = []
        for _ in 0..<20 {
            let r = try await api.send("GET", "/v1/datasets", token: acme)
            statuses.append(r.status)
            retryAfter += r.headers.filter { $0.0.lowercased() == "retry-after" }.map(\.1)
        }
        #expect(statuses.filter { $0 == 200 }.count >= 2 && statuses.contains(429), "\(statuses)")
        #expect(!retryAfter.isEmpty && retryAfter.allSatisfy { Int($0).map { $0 >= 1 } ?? false }, "\(retryAfter)")
        #expect(try await api.send("GET", "/v1/datasets", token: globex).status == 200, "another tenant's rate is its own")
        await d.shutdown()
    }

    /// The OpenAPI document passes an outside validator, and an outside fuzzer run from it
    /// finds no server error and no response outside the document.
    @Test func theDocumentIsValidAndTheServerHoldsToItUnderFuzzing() async throws {
        let (d, api, acme, _, _) = try await deployment(rateLimit: 100_000)
        _ = try await api.send("POST", "/v1/datasets", token: acme, json: ["name": "sales", "horizon": 2])
        try await storeForecast(d)
        let doc = try await api.send("GET", "/v1/openapi.json", token: nil)
        let file = "\(d.directory)/openapi.json"
        try doc.body.write(toFile: file, atomically: true, encoding: .utf8)
        let validated = try await offThePool { try Subprocess.run("/usr/bin/env", ["python3", "-m", "openapi_spec_validator", file]) }
        #expect(validated.status == 0, "openapi-spec-validator: \(validated.output)")
        let fuzzed = try await offThePool {
            try Subprocess.run("/usr/bin/env", ["python3", "-m", "schemathesis.cli", "run", api.base + "/v1/openapi.json",
                                                "--header", "Authorization: Bearer \(acme)", "--max-examples", "25",
                                                "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
                                                "--seed", "1", "--no-color"])
        }
        #expect(fuzzed.status == 0, "schemathesis: \(fuzzed.output.suffix(6000))")
        await d.shutdown()
    }
}
