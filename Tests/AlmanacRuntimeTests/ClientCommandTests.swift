import AlmanacCore
@testable import AlmanacPipeline
@testable import AlmanacAPI
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Testing

/// The `almanac` tenant commands as clients of the `/v1` API: run as separate processes that
/// have only `ALMANAC_HTTP` and `ALMANAC_TOKEN` (no database, no Kafka), as on a machine
/// outside the installation; the token, never a flag, decides the tenant.
@Suite(.serialized) struct ClientCommandTests {
    /// A deployment serving the API with the ingest function, tenants acme (admin and read
    /// tokens) and globex (admin).
    func deployment() async throws -> (d: TestDeployment, acme: String, acmeRead: String, globex: String) {
        let d = try await TestDeployment(functions: [], pipeline: ["ingest"])
        d.withAPI = true
        let acme = try await TenantDirectory.create(tenant: "acme", in: d.db).token
        let acmeRead = try await TenantDirectory.createToken(tenant: "acme", scope: .read, expires: nil, in: d.db).token
        let globex = try await TenantDirectory.create(tenant: "globex", in: d.db).token
        try await d.startControlPlane()
        _ = try await d.ingressURL()
        return (d, acme, acmeRead, globex)
    }

    func write(_ d: TestDeployment, _ name: String, _ text: String) throws -> String {
        let path = "\(d.directory)/\(name)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func datasetsDataAndDeleteGoThroughTheAPIAsTheTokensTenant() async throws {
        let (d, acme, acmeRead, globex) = try await deployment()
        func run(_ args: [String], _ token: String?) async throws -> (status: Int32, output: String) {
            try await d.almanac(args, token: token, remote: true)
        }

        // Without a token, or with a wrong one, the command says what to do.
        let none = try await run(["datasets", "list"], nil)
        #expect(none.status != 0 && none.output.contains("ALMANAC_TOKEN is not set"), "\(none.output)")
        let wrong = try await run(["datasets", "list"], "alm_not-a-token")
        #expect(wrong.status != 0 && wrong.output.contains("401") && wrong.output.contains("check ALMANAC_TOKEN"), "\(wrong.output)")

        let made = try await run(["datasets", "create", "sales", "--horizon", "3", "--frequency", "daily"], acme)
        #expect(made.status == 0 && made.output.contains("created dataset sales (horizon 3"), "\(made.output)")
        let again = try await run(["datasets", "create", "sales", "--horizon", "3"], acme)
        #expect(again.status != 0 && again.output.contains("409") && again.output.contains("already exists"), "\(again.output)")
        let byReader = try await run(["datasets", "create", "other", "--horizon", "3"], acmeRead)
        #expect(byReader.status != 0 && byReader.output.contains("403"), "\(byReader.output)")
        let badName = try await run(["datasets", "create", "../x", "--horizon", "3"], acme)
        #expect(badName.status != 0 && badName.output.contains("400"), "\(badName.output)")

        let listed = try await run(["datasets", "list"], acmeRead)
        #expect(listed.status == 0 && listed.output.contains("sales") && listed.output.contains("daily"), "\(listed.output)")
        let theirs = try await run(["datasets", "list"], globex)
        #expect(theirs.status == 0 && theirs.output.contains("no datasets"), "globex sees none of acme's: \(theirs.output)")
        let peek = try await run(["datasets", "show", "sales"], globex)
        #expect(peek.status != 0 && peek.output.contains("404") && peek.output.contains("tenant globex has no dataset sales"), "\(peek.output)")

        // An upload is streamed from the file and followed to its report.
        var csv = "item_id,timestamp,target_value\n"
        for item in ["A", "B"] { for day in 1...9 { csv += "\(item),2026-01-0\(day),\(day)\n" } }
        let good = try write(d, "good.csv", csv)
        let uploaded = try await run(["data", "upload", "sales", good, "--wait", "--timeout", "120"], acme)
        #expect(uploaded.status == 0 && uploaded.output.contains("accepted (version 1)") && uploaded.output.contains("rows_read: 18"), "\(uploaded.output)")
        let bad = try write(d, "bad.csv", "item_id,timestamp,target_value\nA,2026-01-10,n/a\nA,not a time,3\n")
        let rejected = try await run(["data", "upload", "sales", bad, "--wait", "--timeout", "120"], acme)
        #expect(rejected.status != 0 && rejected.output.contains("rejected") && rejected.output.contains("line 2:"), "\(rejected.output)")
        let intoTheirs = try await run(["data", "upload", "sales", good], globex)
        #expect(intoTheirs.status != 0 && intoTheirs.output.contains("404"), "\(intoTheirs.output)")
        let missing = try await run(["data", "upload", "sales", "\(d.directory)/no-such.csv"], acme)
        #expect(missing.status != 0 && missing.output.contains("no-such.csv"), "\(missing.output)")
        let shown = try await run(["datasets", "show", "sales"], acmeRead)
        #expect(shown.status == 0 && shown.output.contains("versions:") && shown.output.contains("upload-"), "\(shown.output)")
        #expect(try await d.count("SELECT count(*) AS n FROM observations WHERE tenant = 'acme' AND dataset = 'sales'") == 18)

        // Deleting takes the data with it: rows, batch partitions, versions, reports.
        let batches = try await d.db.query("SELECT batch FROM observation_batches WHERE tenant = 'acme' AND dataset = 'sales'").map { try $0.decode("batch", as: Int64.self) }
        #expect(batches.count == 1)
        #expect(try await run(["datasets", "delete", "sales"], acmeRead).status != 0, "a read token cannot delete")
        #expect(try await run(["datasets", "delete", "sales"], globex).output.contains("404"), "nor another tenant")
        let deleted = try await run(["datasets", "delete", "sales"], acme)
        #expect(deleted.status == 0 && deleted.output.contains("deleted dataset sales"), "\(deleted.output)")
        #expect(try await d.count("SELECT count(*) AS n FROM observations WHERE tenant = 'acme' AND dataset = 'sales'") == 0)
        #expect(try await d.count("""
            SELECT count(*) AS n FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'observation_rows'::regclass AND pg_get_expr(c.relpartbound, c.oid) = format('FOR VALUES IN (''%s'')', $1::bigint)
            """, [batches.first ?? -1]) == 0, "the batch's partition is dropped")
        for table in ["dataset_versions", "ingest_reports", "observation_batches"] {
            #expect(try await d.count("SELECT count(*) AS n FROM \(table) WHERE tenant = 'acme' AND dataset = 'sales'") == 0, "\(table)")
        }
        #expect(try await run(["datasets", "show", "sales"], acme).output.contains("404"))
        // The name is free again, and starts over at version 1.
        #expect(try await run(["datasets", "create", "sales", "--horizon", "3", "--frequency", "daily"], acme).status == 0)
        let second = try await run(["data", "upload", "sales", good, "--wait", "--timeout", "120"], acme)
        #expect(second.status == 0 && second.output.contains("accepted (version 1)"), "\(second.output)")
        await d.shutdown()
    }

    @Test func queryWebhooksDeadLettersAndPublishGoThroughTheAPI() async throws {
        let (d, acme, acmeRead, globex) = try await deployment()
        func run(_ args: [String], _ token: String?) async throws -> (status: Int32, output: String) {
            try await d.almanac(args, token: token, remote: true)
        }
        try await DatasetStore.create(Dataset(tenant: "acme", name: "sales", horizon: 2, frequency: "daily"), in: d.db)
        let noForecast = try await run(["query", "--dataset", "sales"], acmeRead)
        #expect(noForecast.status != 0 && noForecast.output.contains("no forecast yet"), "\(noForecast.output)")
        // A live forecast of 1005 items, two steps each: more than one page of the API.
        try await d.db.exec("""
            INSERT INTO predictors (id, tenant, dataset, dataset_version, trigger_event, items, metrics) VALUES ('p1', 'acme', 'sales', 1, 't1', 1005, '{}')
            """)
        try await d.db.exec("""
            INSERT INTO forecasts (id, tenant, dataset, predictor_id, dataset_version, trigger_event, quantiles, items)
            VALUES ('f1', 'acme', 'sales', 'p1', 1, 't1', '{0.1,0.5,0.9}', 1005)
            """)
        try await d.db.exec("""
            INSERT INTO latest_forecasts (tenant, dataset, item_id, ts, forecast_id, quantiles, q, mean)
            SELECT 'acme', 'sales', 'item-' || lpad(i::text, 4, '0'), '2026-01-01T00:00:00Z'::timestamptz + make_interval(days => s), 'f1',
                   '{0.1,0.5,0.9}', ARRAY[i - 1.0, i, i + 1.0], i FROM generate_series(1, 1005) AS i, generate_series(1, 2) AS s
            """)
        let all = try await run(["query", "--dataset", "sales"], acmeRead)
        let lines = all.output.split(separator: "\n")
        #expect(all.status == 0 && lines.first == "item_id,date,p10,p50,p90", "\(all.output.prefix(300))")
        #expect(lines.count == 1 + 1005 * 2, "every item of both pages, the header once: \(lines.count) lines")
        #expect(lines.last == "item-1005,2026-01-03T00:00:00.000Z,1004.0,1005.0,1006.0", "\(lines.last ?? "")")
        let one = try await run(["query", "--dataset", "sales", "--item", "item-0007"], acmeRead)
        #expect(one.output.split(separator: "\n") == ["item_id,date,p10,p50,p90", "item-0007,2026-01-02T00:00:00.000Z,6.0,7.0,8.0",
                                                      "item-0007,2026-01-03T00:00:00.000Z,6.0,7.0,8.0"], "\(one.output)")
        #expect(try await run(["query", "--dataset", "sales"], globex).output.contains("404"), "globex cannot read acme's forecast")

        // Webhooks: added, listed, not deletable by another tenant, deleted.
        let added = try await run(["webhooks", "add", "--url", "http://127.0.0.1:9/hook", "--events", "almanac.forecast.*", "--allow-private"], acme)
        let endpoint = added.output.split(separator: "\n").first { $0.hasPrefix("endpoint ") }.map { String($0.dropFirst(9)) } ?? ""
        #expect(added.status == 0 && endpoint.hasPrefix("ep_") && added.output.contains("secret   whsec_"), "\(added.output)")
        let hooks = try await run(["webhooks", "list"], acmeRead)
        #expect(hooks.status == 0 && hooks.output.contains(endpoint) && !hooks.output.contains("whsec_"), "\(hooks.output)")
        #expect(try await run(["webhooks", "list"], globex).output.contains("no webhook endpoints"))
        #expect(try await run(["webhooks", "deliveries"], acmeRead).output.contains("no deliveries"))
        let theirs = try await run(["webhooks", "delete", endpoint], globex)
        #expect(theirs.status != 0 && theirs.output.contains("tenant globex has no webhook endpoint"), "\(theirs.output)")
        #expect(try await run(["webhooks", "delete", endpoint], acme).status == 0)
        #expect(try await run(["webhooks", "list"], acme).output.contains("no webhook endpoints"))

        // Publishing: the tenant's own types go on the bus; the runtime's are refused.
        let published = try await run(["publish", "--type", "shop.order", "--subject", "sales", "--data", "{\"n\": 1}", "--id", "cli-1"], acme)
        #expect(published.status == 0 && published.output.contains("published cli-1"), "\(published.output)")
        #expect(try await d.count("SELECT count(*) AS n FROM event_archive WHERE id = 'cli-1' AND tenant = 'acme'") == 1)
        let forged = try await run(["publish", "--type", "almanac.forecast.created", "--data", "{}"], acme)
        #expect(forged.status != 0 && forged.output.contains("403") && forged.output.contains("reserved"), "\(forged.output)")
        let batch = try write(d, "events.json", """
            [{"specversion": "1.0", "id": "cli-2", "source": "shop", "type": "shop.order"},
             {"specversion": "1.0", "id": "cli-3", "source": "shop", "type": "shop.order"}]
            """)
        let fromFile = try await run(["publish", "--file", batch], acme)
        #expect(fromFile.status == 0 && fromFile.output.contains("published cli-2") && fromFile.output.contains("published cli-3"), "\(fromFile.output)")

        // Dead letters: only the tenant's own are listed, shown and redriven.
        for (id, tenant) in [(9001, "acme"), (9002, "globex")] as [(Int64, String)] {
            try await d.db.exec("""
                INSERT INTO dead_letters (id, stage, source_topic, source_partition, source_offset, record_value, event_id, event_source, event_type,
                                          tenant, error_code, error, attempts)
                VALUES ($1, 'router', 'almanac.events', 0, $1, convert_to('{"x": 1}', 'UTF8'), $2, 'shop', 'shop.order', $3, 'invalid', 'a test letter', 1)
                """, [id, "dl-\(id)", tenant])
        }
        let letters = try await run(["dlq", "list"], acmeRead)
        #expect(letters.status == 0 && letters.output.contains("dl-9001") && !letters.output.contains("dl-9002"), "\(letters.output)")
        let letter = try await run(["dlq", "show", "9001"], acmeRead)
        #expect(letter.status == 0 && letter.output.contains("error: a test letter") && letter.output.contains("{\"x\": 1}"), "\(letter.output)")
        #expect(try await run(["dlq", "show", "9002"], acme).output.contains("404"), "globex's letter is not acme's")
        #expect(try await run(["dlq", "redrive", "9002"], acme).status != 0)
        let redriven = try await run(["dlq", "redrive", "--all"], acme)
        #expect(redriven.status == 0 && redriven.output.contains("redrove dead letter 9001") && !redriven.output.contains("9002"), "\(redriven.output)")
        #expect(try await d.count("SELECT count(*) AS n FROM dead_letters WHERE id = 9001 AND status = 'redriven'") == 1)
        #expect(try await d.count("SELECT count(*) AS n FROM dead_letters WHERE id = 9002 AND status = 'open'") == 1, "globex's stays open")
        await d.shutdown()
    }
}
