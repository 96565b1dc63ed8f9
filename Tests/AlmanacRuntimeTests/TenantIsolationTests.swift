import AlmanacCore
@testable import AlmanacPipeline
@testable import AlmanacAPI
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Testing

/// Tenants cannot see or touch each other's events, files, forecasts or deliveries: real
/// Postgres, the mock cluster and the pipeline's own function processes.
@Suite(.serialized) struct TenantIsolationTests {
    func event(id: String, source: String, tenant: String, n: Int) -> CloudEvent {
        var e = CloudEvent(id: id, source: source, type: "test.iso", subject: "same-key", json: ["n": .number(Double(n))])
        e.tenant = tenant
        return e
    }

    /// CloudEvents makes ids unique per source only: the same id from another tenant or
    /// another source is another event; the same (tenant, source, id) again is a duplicate.
    @Test func anEventIsOneByTenantSourceAndID() async throws {
        let d = try await TestDeployment(functions: [TestFunction(name: "iso", subscribe: "test.iso")], partitions: 1)
        try await d.startControlPlane()
        try await d.publish(event(id: "1", source: "me", tenant: "acme", n: 1))
        try await d.publish(event(id: "1", source: "me", tenant: "globex", n: 2))
        try await d.publish(event(id: "1", source: "other", tenant: "acme", n: 3))
        try await d.publish(event(id: "1", source: "me", tenant: "acme", n: 4))   // a duplicate of the first
        try await d.publish(event(id: "2", source: "me", tenant: "acme", n: 5))   // behind all of them on one partition
        try await d.waitForCount("SELECT count(*) AS n FROM test_effects WHERE n = 5", atLeast: 1)
        let seen = try await d.db.query("SELECT n FROM test_effects ORDER BY n").map { try $0.decode("n", as: Int.self) }
        #expect(seen == [1, 2, 3, 5], "each (tenant, source, id) handled once, the duplicate skipped")
        #expect(try await d.count("SELECT count(*) AS n FROM processed_events WHERE event_id = '1'") == 3)
        // The archive keeps all three events with id 1 (replay and reconciliation see each).
        try await d.waitForCount("SELECT count(*) AS n FROM event_archive WHERE id = '2'", atLeast: 1)
        #expect(try await d.count("SELECT count(*) AS n FROM event_archive WHERE id = '1'") == 3)
        #expect(try await d.count("SELECT count(*) AS n FROM dead_letters") == 0)
        await d.shutdown()
    }

    /// Export finds a forecast only within the event's tenant and names its folder from the
    /// stored forecast: a forged `almanac.forecast.created` with another tenant's forecast id,
    /// or with a path for a dataset, writes nothing and is dead-lettered with why. Notify
    /// finds a delivery only within the event's tenant, and a retry only for the attempt due.
    @Test func exportAndNotifyActOnlyOnTheirTenantsRows() async throws {
        let d = try await TestDeployment(functions: [], pipeline: ["export", "notify"])
        try await DatasetStore.create(Dataset(tenant: "acme", name: "sales", horizon: 2), in: d.db)
        try await d.db.exec("""
            INSERT INTO predictors (id, tenant, dataset, dataset_version, trigger_event, items, metrics)
            VALUES ('p1', 'acme', 'sales', 1, 't1', 1, '{}');
            """)
        try await d.db.exec("""
            INSERT INTO forecasts (id, tenant, dataset, predictor_id, dataset_version, trigger_event, quantiles, items)
            VALUES ('f1', 'acme', 'sales', 'p1', 1, 't1', '{0.1,0.5,0.9}', 1)
            """)
        try await d.db.exec("""
            INSERT INTO forecast_points (forecast_id, item_id, ts, mean, q)
            VALUES ('f1', 'A', '2026-01-01T00:00:00Z', 5, '{4,5,6}'), ('f1', 'A', '2026-01-02T00:00:00Z', 6, '{5,6,7}')
            """)
        let endpoint = try await Webhooks.add(tenant: "acme", url: "http://127.0.0.1:9/hook", eventTypes: ["test.none"],
                                              allowPrivate: true, in: d.db)
        let delivery = try await d.db.query("""
            INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, webhook_id, body)
            VALUES ($1, 'e1', 'test.none', 'msg_1', '{}') RETURNING id
            """, [endpoint.id])[0].decode("id", as: Int.self)
        try await d.startControlPlane()

        func created(_ tenant: String, dataset: String) -> CloudEvent {
            var e = CloudEvent(source: "forger", type: "almanac.forecast.created", subject: dataset,
                               json: ["forecast_id": "f1", "dataset": .string(dataset), "predictor_id": "p1", "dataset_version": 1,
                                      "items": 1, "quantiles": [0.1, 0.5, 0.9]])
            e.tenant = tenant
            return e
        }
        let forged = [created("mallory", dataset: "sales"), created("acme", dataset: "../../../escape"),
                      created("default", dataset: "../..")]
        for e in forged { try await d.publish(e) }
        let own = created("acme", dataset: "sales")
        try await d.publish(own)
        try await d.waitForCount("SELECT count(*) AS n FROM processed_events WHERE function = 'export'", atLeast: 4)
        let letters = try await d.db.query("SELECT tenant, error FROM dead_letters WHERE stage = 'export' ORDER BY tenant")
        #expect(letters.map { $0.text("tenant") } == ["acme", "default", "mallory"])
        let errors = letters.map { $0.text("error") ?? "" }
        #expect(errors[0].contains("forecast f1 is of dataset sales, not \"../../../escape\""), "\(errors[0])")
        #expect(errors[1].contains("\"f1\" is not stored for tenant default"), "\(errors[1])")
        #expect(errors[2].contains("\"f1\" is not stored for tenant mallory"), "\(errors[2])")
        // Only the owner's export was written, in its own folder; nothing anywhere else.
        let fm = FileManager.default
        #expect(try fm.contentsOfDirectory(atPath: d.exportDirectory) == ["acme"])
        #expect(fm.fileExists(atPath: "\(d.exportDirectory)/acme/sales/f1.csv"))
        #expect(!fm.fileExists(atPath: "\(d.directory)/escape") && !fm.fileExists(atPath: "\(d.directory)/../escape"))
        #expect(try await d.count("SELECT count(*) AS n FROM latest_forecasts WHERE tenant = 'acme'") == 2)
        #expect(try await d.count("SELECT count(*) AS n FROM latest_forecasts WHERE tenant <> 'acme'") == 0)

        // Retries for acme's delivery: from another tenant, and for an attempt not due, spend nothing.
        func retry(_ tenant: String, attempt: Int) -> CloudEvent {
            var e = CloudEvent(source: "forger", type: NotifyFunction.retryType,
                               json: ["delivery_id": .number(Double(delivery)), "attempt": .number(Double(attempt))])
            e.tenant = tenant
            return e
        }
        let ignored = [retry("mallory", attempt: 1), retry("acme", attempt: 7)]
        for e in ignored { try await d.publish(e) }
        try await d.waitForCount("SELECT count(*) AS n FROM processed_events WHERE function = 'notify' AND event_id = ANY($1::text[])",
                                 [ignored.map(\.id)], atLeast: 2)
        #expect(try await d.count("SELECT count(*) AS n FROM webhook_attempts") == 0)
        #expect(try await d.count("SELECT attempts::bigint AS n FROM webhook_deliveries WHERE id = $1", [delivery]) == 0)
        // The attempt due, from the owner, is made (port 9 refuses: a failed attempt, retried later).
        try await d.publish(retry("acme", attempt: 1))
        // The attempt is stored before the delivery's count: wait for the count, then read both.
        #expect(try await d.waitForCount("SELECT attempts::bigint AS n FROM webhook_deliveries WHERE id = $1", [delivery], atLeast: 1) == 1)
        #expect(try await d.count("SELECT count(*) AS n FROM webhook_attempts") == 1)
        await d.shutdown()
    }

    /// The watcher announces `<drop>/<tenant>/<dataset>/<file>` as that tenant's, and skips
    /// hidden names and folders that are not valid names.
    @Test func theDropFolderIsSplitByTenant() throws {
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("drop-\(UUID().uuidString.prefix(8))").path
        defer { try? fm.removeItem(atPath: root) }
        for (dir, file) in [("acme/sales", "a.csv"), ("acme/sales", ".part"), ("acme/.hidden", "b.csv"), ("bad name/sales", "c.csv"),
                            ("globex/stock", "d.csv"), ("globex", "loose.csv")] {
            try fm.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
            fm.createFile(atPath: "\(root)/\(dir)/\(file)", contents: Data("x".utf8))
        }
        let found = DropFolderWatcher.files(in: root).map { "\($0.tenant)|\($0.dataset)|\($0.path)" }
        #expect(found == ["acme|sales|\(root)/acme/sales/a.csv", "globex|stock|\(root)/globex/stock/d.csv"])

        let drop = try DropFolder(path: root)
        #expect(try drop.resolve("sales/a.csv", tenant: "acme").lastPathComponent == "a.csv")
        #expect(throws: PipelineError.self) { try drop.resolve("file://\(root)/acme/sales/a.csv", tenant: "globex") }
        #expect(throws: PipelineError.self) { try drop.resolve("../acme/sales/a.csv", tenant: "globex") }
        #expect(throws: PipelineError.self) { try drop.resolve("sales/a.csv", tenant: "../acme") }
        #expect(try ExportFunction.directory(root: "/x", tenant: "acme", dataset: "sales").path == "/x/acme/sales")
        #expect(throws: InvalidName.self) { try ExportFunction.directory(root: "/x", tenant: "acme", dataset: "../..") }
        #expect(throws: InvalidName.self) { try ExportFunction.directory(root: "/x", tenant: "a/b", dataset: "sales") }
    }
}
