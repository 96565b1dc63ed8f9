import AlmanacCore
import AlmanacHTTP
@testable import AlmanacPipeline
@testable import AlmanacAPI
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Testing

/// The documented flow as a business system's script runs it, with a plain HTTP client and a
/// real receiver that checks signatures with its own HMAC; beside it, a second tenant tries
/// every way at the first one's things.
@Suite(.serialized) struct APIFlowTests {
    @Test func theWholeLoopOverHTTPWhileAnotherTenantReachesNothing() async throws {
        let receiver = WebhookReceiver()
        try await receiver.serve { port in
            var d = try await TestDeployment(functions: [], pipeline: ["ingest", "train", "forecast", "export", "notify"])
            d.withAPI = true
            let acme = try await TenantDirectory.create(tenant: "acme", in: d.db).token
            let globex = try await TenantDirectory.create(tenant: "globex", in: d.db).token
            try await d.startControlPlane()
            let api = APITests.Client(base: try await d.ingressURL())

            // 1. A dataset and a webhook endpoint.
            #expect(try await api.send("POST", "/v1/datasets", token: acme, json: ["name": "shop", "horizon": 7, "frequency": "daily"]).status == 201)
            let (made, endpoint) = try await api.object("POST", "/v1/webhooks", token: acme, json: [
                "url": .string("http://127.0.0.1:\(port)/hook"), "events": ["almanac.forecast.exported"], "allow_private": true])
            #expect(made == 201, "\(endpoint.serialized())")
            let endpointID = try #require(endpoint["id"]?.stringValue)
            receiver.secret = try #require(endpoint["secret"]?.stringValue)

            // 2. The data, uploaded.
            let start = Date(timeIntervalSince1970: 1_767_225_600)
            var csv = "item_id,timestamp,target_value\n"
            for (k, item) in ["A", "B", "C"].enumerated() {
                for day in 0..<56 {
                    let v = 100 + Double(k) * 20 + [0, 5, 10, 8, 3, -6, -12][day % 7] + Double(day % 5)
                    csv += "\(item),\(RFC3339.format(start.addingTimeInterval(Double(day) * 86400)).prefix(10)),\(v)\n"
                }
            }
            let upload = try await api.http.send(HTTPClientRequest(method: "POST", url: api.base + "/v1/datasets/shop/data",
                                                                   headers: [("Authorization", "Bearer \(acme)"), ("Content-Type", "text/csv")],
                                                                   body: Data(csv.utf8)))
            #expect(upload.status == 202)

            // 3. The signed webhook.
            try await waitFor("the exported webhook") { receiver.accepted.contains { $0.type == "almanac.forecast.exported" } }
            let delivered = try #require(receiver.accepted.first { $0.type == "almanac.forecast.exported" })
            #expect(delivered.signatureValid)

            // 4. The forecast, as JSON and as CSV: the same numbers.
            let (status, forecast) = try await api.object("GET", "/v1/datasets/shop/forecast?item=A", token: acme)
            #expect(status == 200)
            let points = forecast["items"]?.arrayValue?.first?["points"]?.arrayValue ?? []
            #expect(points.count == 7)
            let csvAnswer = try await api.send("GET", "/v1/datasets/shop/forecast?item=A", token: acme, accept: "text/csv")
            let lines = csvAnswer.body.split(separator: "\n").dropFirst()
            #expect(lines.count == 7)
            for (line, point) in zip(lines, points) {
                let f = line.split(separator: ",")
                #expect(f[0] == "A" && String(f[1]) == point["timestamp"]?.stringValue && Double(f[3]) == point["p50"]?.numberValue,
                        "\(line) vs \(point.serialized())")
            }
            let exported = try #require(try JSONValue(parsing: delivered.body)["data"]?["forecast_id"]?.stringValue)
            #expect(forecast["forecast_id"]?.stringValue == exported, "the API serves the forecast the webhook announced")

            // The predictor behind it: metrics and each item's chosen model.
            let (_, trained) = try await api.object("GET", "/v1/datasets/shop/predictors", token: acme)
            let predictor = try #require(trained["items"]?.arrayValue?.first)
            #expect(predictor["items"]?.arrayValue?.compactMap { $0["item_id"]?.stringValue } == ["A", "B", "C"])
            #expect(predictor["items"]?.arrayValue?.allSatisfy { !($0["model"]?.stringValue ?? "").isEmpty } == true)
            #expect(predictor["metrics"]?.objectValue?.isEmpty == false, "\(predictor.serialized())")

            // 5. Rotate the secret; the next delivery verifies with the new one (and not the old: no overlap).
            let old = receiver.secret
            let (_, rotated) = try await api.object("POST", "/v1/webhooks/\(endpointID)/rotate-secret", token: acme, json: ["overlap_seconds": 0])
            let newSecret = try #require(rotated["secret"]?.stringValue)
            receiver.secret = newSecret
            let (_, listed) = try await api.object("GET", "/v1/webhooks/\(endpointID)/deliveries", token: acme)
            let deliveryID = try #require(listed["items"]?.arrayValue?.first?["id"]?.intValue)
            let before = receiver.deliveries.count
            #expect(try await api.send("POST", "/v1/deliveries/\(deliveryID)/redeliver", token: acme).status == 202)
            try await waitFor("the redelivery") { receiver.deliveries.count > before }
            let again = try #require(receiver.deliveries.dropFirst(before).first)
            #expect(again.signatureValid && again.id == delivered.id && again.body == delivered.body)
            #expect(!WebhookReceiver.verifies(secret: old, id: again.id, timestamp: again.timestamp, signature: again.signature, body: again.body))

            // 6. The other tenant reaches none of it.
            for (method, path) in [("GET", "/v1/datasets/shop"), ("GET", "/v1/datasets/shop/forecast?item=A"),
                                   ("GET", "/v1/webhooks/\(endpointID)/deliveries"), ("DELETE", "/v1/webhooks/\(endpointID)"),
                                   ("POST", "/v1/webhooks/\(endpointID)/rotate-secret"), ("POST", "/v1/deliveries/\(deliveryID)/redeliver")] {
                let r = try await api.send(method, path, token: globex)
                #expect(r.status == 404, "globex \(method) \(path): \(r.status) \(r.body)")
            }
            let theirUpload = try await api.http.send(HTTPClientRequest(method: "POST", url: api.base + "/v1/datasets/shop/data",
                                                                        headers: [("Authorization", "Bearer \(globex)"), ("Content-Type", "text/csv")],
                                                                        body: Data(csv.utf8)))
            #expect(theirUpload.status == 404)
            let (_, theirHooks) = try await api.object("GET", "/v1/webhooks", token: globex)
            #expect(theirHooks["items"]?.arrayValue?.isEmpty == true)
            // Forged internal events and events claiming acme are refused at the door.
            for forged in [CloudEvent(id: "x1", source: "g", type: "almanac.forecast.created", json: ["forecast_id": .string(exported)]),
                           CloudEvent(id: "x2", source: "g", type: "almanac.webhook.retry", json: ["delivery_id": .number(Double(deliveryID))])] {
                let r = try await api.http.send(HTTPClientRequest(method: "POST", url: api.base + "/v1/events",
                                                                  headers: [("Authorization", "Bearer \(globex)"), ("Content-Type", cloudEventsJSONType)],
                                                                  body: forged.structuredJSON().serializedData()))
                #expect(r.status == 403)
            }
            var claim = CloudEvent(id: "x3", source: "g", type: "demo.x", json: [:])
            claim.tenant = "acme"
            #expect(try await api.http.send(HTTPClientRequest(method: "POST", url: api.base + "/v1/events",
                                                              headers: [("Authorization", "Bearer \(globex)"), ("Content-Type", cloudEventsJSONType)],
                                                              body: claim.structuredJSON().serializedData())).status == 403)
            // A data arrival naming acme's file is rejected by ingest, and acme's id reused by globex is globex's own event.
            #expect(try await api.send("POST", "/v1/datasets", token: globex, json: ["name": "shop", "horizon": 7]).status == 201)
            let acmeFile = try #require(try FileManager.default.contentsOfDirectory(atPath: "\(d.dropDirectory)/acme/shop").first)
            let uploadID = try #require(try JSONValue(parsing: Data(upload.body))["import_id"]?.stringValue)
            let arrival = CloudEvent(id: uploadID, source: "almanac/api", type: "almanac.data.arrived", subject: "shop",
                                     json: ["dataset": "shop", "url": .string("file://\(d.dropDirectory)/acme/shop/\(acmeFile)")])
            let posted = try await api.http.send(HTTPClientRequest(method: "POST", url: api.base + "/v1/events",
                                                                   headers: [("Authorization", "Bearer \(globex)"), ("Content-Type", cloudEventsJSONType)],
                                                                   body: arrival.structuredJSON().serializedData()))
            #expect(posted.status == 202)
            try await waitFor("globex's import to settle") {
                let (_, s) = try await api.object("GET", "/v1/datasets/shop/imports/\(uploadID)", token: globex)
                return s["status"]?.stringValue == "rejected"
            }
            let (_, theirs) = try await api.object("GET", "/v1/datasets/shop/imports/\(uploadID)", token: globex)
            #expect(theirs["report"]?["reason"]?.stringValue?.contains("outside the drop folder of tenant globex") == true, "\(theirs.serialized())")
            #expect(try await d.count("SELECT count(*) AS n FROM observations WHERE tenant = 'globex'") == 0)
            let (_, ours) = try await api.object("GET", "/v1/datasets/shop/imports/\(uploadID)", token: acme)
            #expect(ours["status"]?.stringValue == "accepted", "acme's import of the same id is still its own: \(ours.serialized())")
            // Acme's endpoint was never touched by globex: still listed, still its secret.
            let (_, hooks) = try await api.object("GET", "/v1/webhooks", token: acme)
            #expect(hooks["items"]?.arrayValue?.map { $0["id"]?.stringValue } == [endpointID])
            #expect(try await d.count("SELECT count(*) AS n FROM dead_letters") == 0)
            await d.shutdown()
        }
    }
}
