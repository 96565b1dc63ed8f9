import AlmanacCore
import AlmanacForecast
@testable import AlmanacPipeline
@testable import AlmanacAPI
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Testing

/// The deep trainer as a pipeline function (Python under the exec adapter, a tiny network on
/// CPU): a champion dataset gets a statistical and a deep predictor on the same version,
/// and its forecast comes from the one champion selection picks; a train-deep instance of a
/// deep-only dataset killed mid-training resumes from its checkpoint, and the dataset is
/// forecast by the network.
@Suite(.serialized) struct DeepPipelineTests {
    static let functions = ["ingest", "train", "train-deep", "forecast", "export", "notify"]
    let pipeline = ForecastPipelineTests()

    /// A deployment whose deep trainer is tiny and whose functions find python/almanac_deep.
    func deployment(epochs: Int, steps: Int = 20, models: String = "champion") async throws -> TestDeployment {
        let d = try await TestDeployment(functions: [], pipeline: Self.functions)
        d.environment = [
            "ALMANAC_DEEP_PATH": TestPaths.root + "/python", "JAX_PLATFORMS": "cpu",
            "ALMANAC_DEEP_OPTIONS": "--width 32 --layers 2 --blocks 1 --batch 64 --lookback 28 --steps-per-epoch \(steps) --max-epochs \(epochs) --patience 100",
        ]
        d.gpus = GPUInventory(slots: ["0", "1"])
        try await DatasetStore.create(Dataset(tenant: "default", name: "shop", horizon: 7, frequency: "daily", models: models), in: d.db)
        return d
    }

    @Test func championDatasetForecastsWithTheBetterPredictor() async throws {
        let receiver = WebhookReceiver()
        try await receiver.serve { port in
            let d = try await deployment(epochs: 3)
            let endpoint = try await Webhooks.add(tenant: "default", url: "http://127.0.0.1:\(port)/hook",
                                                  eventTypes: ["almanac.forecast.exported"], allowPrivate: true, in: d.db)
            receiver.secret = endpoint.secret
            try await d.startControlPlane()
            try await pipeline.arrive(d, try dropWithPromotions(d, items: ["A", "B", "C"], days: 0..<84))
            try await waitFor("both predictors and the champion's forecast", timeout: .seconds(240)) {
                try await d.count("SELECT count(*) AS n FROM forecasts WHERE backtest_wape IS NOT NULL") == 1
            }
            #expect(try await d.count("SELECT count(*) AS n FROM predictors WHERE kind = 'statistical'") == 1)
            #expect(try await d.count("SELECT count(*) AS n FROM predictors WHERE kind = 'deep'") == 1)
            #expect(try await d.count("SELECT count(*) AS n FROM predictor_models WHERE length(model) > 1000") == 1)
            #expect(try await d.count("SELECT count(*) AS n FROM predictor_holdouts") == 6, "3 items × 2 predictors")
            #expect(try await d.count("SELECT count(*) AS n FROM function_progress") == 0, "progress is cleared once stored")
            // The deep predictor's trained event says what it is; both predictors saw version 1.
            let trained = try await d.db.query("SELECT (event->'data')::text AS data FROM event_archive WHERE type = 'almanac.predictor.trained'")
            let kinds = Set(trained.compactMap { try? JSONValue(parsing: $0.text("data") ?? "")["kind"]?.stringValue })
            #expect(kinds == ["statistical", "deep"])
            // The deep model read the related column as an input.
            let deepEvent = trained.compactMap { try? JSONValue(parsing: $0.text("data") ?? "") }.first { $0["kind"]?.stringValue == "deep" }
            #expect(deepEvent?["related"]?.arrayValue?.compactMap(\.stringValue) == ["promo"])
            #expect(try await d.count("SELECT count(DISTINCT dataset_version) AS n FROM predictors") == 1)

            // The champion's forecast is the kind that champion selection picks from the stored holdouts.
            let stat = try #require(try await Predictor.latest(tenant: "default", dataset: "shop", kind: .statistical, in: d.db))
            let deep = try #require(try await Predictor.latest(tenant: "default", dataset: "shop", kind: .deep, in: d.db))
            let expected = try #require(ForecastPlan.choose(statistical: stat, deep: deep))
            let row = try #require(try await d.db.query("SELECT id, kind, predictor_id FROM forecasts WHERE backtest_wape IS NOT NULL").first)
            #expect(row.text("kind") == expected.kind.rawValue)
            #expect(row.text("predictor_id") == (expected.kind == .statistical ? stat.id : deep.id))
            try await waitFor("the champion forecast's webhook") {
                receiver.accepted.filter { $0.type == "almanac.forecast.exported" && String(decoding: $0.body, as: UTF8.self).contains(row.text("id") ?? "?") }.count == 1
            }
            #expect(receiver.deliveries.allSatisfy { $0.signatureValid })
            // Training holds a GPU slot; deep inference (when the champion needs the network) borrows the other.
            if expected.kind != .statistical { #expect(inferenceRan(d, on: ["1"]), "deep inference did not borrow the free slot") }
            // The table holds the champion's forecast, whole, with ordered quantiles.
            #expect(try await d.count("SELECT count(*) AS n FROM latest_forecasts WHERE forecast_id = $1", [row.text("id")]) == 21)
            #expect(try await d.count("SELECT count(*) AS n FROM latest_forecasts WHERE NOT (q[1] <= q[2] AND q[2] <= q[3])") == 0)
            await d.shutdown()
        }
    }

    /// Daily rows with a related `promo` column (1 every sixth day) that lifts the target by half.
    func dropWithPromotions(_ d: TestDeployment, items: [String], days: Range<Int>) throws -> String {
        let start = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01
        var body = "item_id,timestamp,target_value,promo\n"
        for (k, item) in items.enumerated() {
            for day in days {
                let promo = day % 6 == 0 ? 1.0 : 0.0
                let v = (100 + Double(k) * 20 + [0, 5, 10, 8, 3, -6, -12][day % 7]) * (1 + 0.5 * promo)
                body += "\(item),\(RFC3339.format(start.addingTimeInterval(Double(day) * 86400)).prefix(10)),\(v),\(Int(promo))\n"
            }
        }
        try FileManager.default.createDirectory(atPath: "\(d.dropDirectory)/default/shop", withIntermediateDirectories: true)
        let path = "\(d.dropDirectory)/default/shop/history.csv"
        try Data(body.utf8).write(to: URL(fileURLWithPath: path))
        return "file://" + path
    }

    @Test func aKilledDeepTrainingResumesFromItsCheckpoint() async throws {
        let d = try await deployment(epochs: 8, steps: 2000, models: "deep")
        try await d.startControlPlane()
        try await pipeline.arrive(d, try pipeline.drop(d, "history.csv", pipeline.rows(items: ["A", "B", "C"], days: 0..<84)))
        try await waitFor("deep training past its second epoch", timeout: .seconds(180)) {
            // The trainer's progress lines, kept by the SDK for `almanac status`.
            try await d.count("SELECT count(*) AS n FROM function_progress WHERE function = 'train-deep' AND (progress->>'epoch')::int >= 2") == 1
        }
        let victims = instancePIDs(of: d).filter { functionName(of: $0) == "train-deep" }
        #expect(!victims.isEmpty)
        for pid in victims { kill(pid, SIGKILL) }
        try await waitFor("the deep predictor after the kill", timeout: .seconds(240)) {
            try await d.count("SELECT count(*) AS n FROM predictors WHERE kind = 'deep'") == 1
        }
        let log = d.log("train-deep")
        #expect(log.contains("resumed_from_epoch"), "the retry did not resume from the checkpoint")
        // Eight epochs in all: the resumed run did only those left (the history is in the checkpoint).
        try await waitFor("the deep predictor's trained event in the archive") {
            try await d.count("SELECT count(*) AS n FROM event_archive WHERE type = 'almanac.predictor.trained' AND event->'data'->>'kind' = 'deep'") == 1
        }
        let event = try #require(try await d.db.query("""
            SELECT event->'data'->>'epochs' AS epochs FROM event_archive WHERE type = 'almanac.predictor.trained' AND event->'data'->>'kind' = 'deep'
            """).first)
        #expect(event.text("epochs") == "8")
        #expect(try await d.count("SELECT count(*) AS n FROM predictors WHERE kind = 'deep'") == 1, "one predictor despite the retry")
        // A deep-only dataset: no statistical predictor, and the forecast comes from the network.
        #expect(try await d.count("SELECT count(*) AS n FROM predictors WHERE kind = 'statistical'") == 0)
        try await waitFor("the deep forecast in the table") {
            try await d.count("SELECT count(*) AS n FROM latest_forecasts l JOIN forecasts f ON f.id = l.forecast_id WHERE f.kind = 'deep'") == 21
        }
        #expect(try await d.count("SELECT count(*) AS n FROM latest_forecasts WHERE NOT (q[1] <= q[2] AND q[2] <= q[3])") == 0)
        #expect(inferenceRan(d, on: ["0", "1"]), "deep inference did not borrow a free GPU slot")
        await d.shutdown()
    }

    /// Whether the forecast function logged deep inference on one of these GPU slots rather
    /// than on the CPU. The trainer, the only `gpu: preferred` function, gets slot 0 first and
    /// holds it while idle, so a borrowed slot is 1 unless a kill reshuffled them.
    func inferenceRan(_ d: TestDeployment, on slots: [String]) -> Bool {
        d.log("forecast").split(separator: "\n").contains { line in
            line.contains("\"msg\":\"deep inference\"") && slots.contains { line.contains("\"gpu\":\"\($0)\"") }
        }
    }
}
