import AlmanacCore
@testable import AlmanacPipeline
@testable import AlmanacAPI
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Logging
import Testing

/// A redelivery asked for while an attempt is in flight — the receiver has the webhook, notify
/// has not yet recorded its answer — is not overwritten by that attempt's outcome.
@Suite struct RedeliveryTests {
    @Test func aRedeliveryAskedDuringAnAttemptIsNotLost() async throws {
        let url = try await TestPostgres.shared.freshDatabase()
        let db = try await PostgresConnection.connect(url: url)
        _ = try await TenantDirectory.create(tenant: "acme", in: db)
        _ = try await TenantDirectory.create(tenant: "globex", in: db)
        let receiver = WebhookReceiver()
        try await receiver.serve { port in
            let endpoint = try await Webhooks.add(tenant: "acme", url: "http://127.0.0.1:\(port)/hook", eventTypes: ["demo.*"],
                                                  allowPrivate: true, in: db)
            receiver.secret = endpoint.secret
            let id: Int64 = try await db.query("""
                INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, webhook_id, body)
                VALUES ($1, 'e1', 'demo.x', 'msg_1', '{"type":"demo.x"}') RETURNING id
                """, [endpoint.id])[0].decode("id")
            let notify = NotifyFunction()
            func attempt() async throws {
                var event = CloudEvent(id: UUID().uuidString, source: "almanac/api", type: NotifyFunction.retryType, json: ["delivery_id": .number(Double(id))])
                event.tenant = "acme"
                let manifest = FunctionManifest(name: "notify", run: .executable("notify"), subscriptions: [])
                let context = FunctionContext(manifest: manifest, event: event, attempt: 1, deadline: .now + .seconds(60),
                                              logger: Logger(label: "test.notify"), database: db)
                try await notify.deliver(Int(id), context: context)
            }
            func state() async throws -> (String, Int) {
                let r = try await db.query("SELECT state, attempts FROM webhook_deliveries WHERE id = $1", [id])[0]
                return (try r.decode("state"), try r.decode("attempts"))
            }

            // The first attempt reaches the receiver, which holds its answer; the redelivery is asked for then.
            receiver.hold()
            let first = Task { try await attempt() }
            try await waitFor("the first attempt at the receiver") { receiver.deliveries.count == 1 }
            let asker = try await PostgresConnection.connect(url: url)
            #expect(try await !Webhooks.requestRedelivery(id, tenant: "globex", in: asker), "another tenant's delivery is not found")
            #expect(try await Webhooks.requestRedelivery(id, tenant: "acme", in: asker))
            receiver.release()
            try await first.value
            let (afterFirst, attempts) = try await state()
            #expect(afterFirst == "pending" && attempts == 1, "the answered attempt left the asked-for redelivery pending: \(afterFirst), \(attempts)")

            // The retry event the API published then sends it again: same webhook-id and body, signed.
            try await attempt()
            #expect(receiver.deliveries.count == 2)
            #expect(receiver.deliveries.allSatisfy { $0.id == "msg_1" && $0.signatureValid })
            let (final, total) = try await state()
            #expect(final == "delivered" && total == 2)

            // Without a request in between, an attempt ends the delivery as before: nothing more is sent.
            try await attempt()
            #expect(receiver.deliveries.count == 2)
            await asker.close()
        }
        await db.close()
    }
}
