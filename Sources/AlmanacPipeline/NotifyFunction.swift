import AlmanacCore
import AlmanacHTTP
import AlmanacPostgres
import AlmanacFunctions
import Foundation
import Logging

/// The notify function: delivers events to the webhook endpoints that subscribe to them.
///
/// Each (endpoint, event) pair is one delivery with a fixed `webhook-id` and body (the
/// CloudEvent in structured JSON), so a receiver never sees one id with two payloads. Requests
/// are signed per Standard Webhooks (with the previous secret too while a rotation overlaps).
/// A 2xx delivers; 5xx, 408, 429 (honouring `Retry-After`), timeouts and connection errors are retried on `RetrySchedule` through a scheduled
/// `almanac.webhook.retry` event (the function need not stay up in between); other 4xx fail
/// at once; 410 also disables the endpoint. Every attempt is stored in `webhook_attempts`.
public struct NotifyFunction: FunctionHandler {
    /// The retry event's type.
    public static let retryType = WebhookRetry.eventType
    /// The most of a receiver's answer that is read (the start of it is kept as the error); the rest is cut.
    public static let maxResponseBytes = 64 * 1024
    let client = HTTPClient()
    /// The retry schedule.
    public var schedule: RetrySchedule

    /// Makes the handler.
    public init(schedule: RetrySchedule = RetrySchedule()) { self.schedule = schedule }

    /// Fans an event out to its endpoints, or retries one delivery.
    public func handle(_ event: CloudEvent, context: FunctionContext) async throws {
        let db = try context.database
        if event.type == WebhookRetry.eventType {
            let retry = try event.payload(WebhookRetry.self)
            return try await deliver(retry.deliveryID, context: context, asAttempt: retry.attempt)
        }
        let body = event.structuredJSON().serialized()
        for endpoint in try await Webhooks.endpoints(tenant: event.tenant, in: db) where endpoint.wants(event.type) {
            let webhookID = "msg_" + FNV1a.hex(endpoint.id + "/" + event.id)
            try await db.execute("""
                INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, webhook_id, body) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (endpoint_id, event_id) DO NOTHING
                """, [endpoint.id, event.id, event.type, webhookID, body])
            let row = try await db.query("SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = $2", [endpoint.id, event.id])
            try await deliver(try row[0].decode("id"), context: context)
        }
    }

    /// One attempt at a pending delivery of the event's tenant; records it and decides what follows.
    /// - Parameter asAttempt: for a retry, the attempt it was scheduled as: a retry for any
    ///   other attempt (a stale duplicate, or a forged one) is ignored, so it spends nothing.
    func deliver(_ id: Int, context: FunctionContext, asAttempt: Int? = nil) async throws {
        let db = try context.database
        let rows = try await db.query("""
            SELECT d.webhook_id, d.body, d.state, d.attempts, d.redeliveries, e.id AS endpoint, e.url, e.secret, e.allow_private, e.disabled_at IS NOT NULL AS disabled, e.deleted_at IS NOT NULL AS deleted,
                   CASE WHEN e.previous_until > now() THEN e.previous_secret END AS previous_secret
            FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id = $1 AND e.tenant = $2
            """, [id, context.event.tenant])
        guard let d = rows.first, d.text("state") == "pending" else { return }
        if let asAttempt, asAttempt != (try d.decode("attempts", as: Int.self)) + 1 {
            context.logger.info("webhook retry ignored: not the attempt due", metadata: ["delivery": "\(id)", "attempt": "\(asAttempt)"])
            return
        }
        guard d.text("disabled") != "t", d.text("deleted") != "t" else {
            try await db.execute("UPDATE webhook_deliveries SET state = 'failed', last_error = 'endpoint disabled or deleted' WHERE id = $1", [id])
            return
        }
        let webhookID: String = try d.decode("webhook_id"), url: String = try d.decode("url")
        // During a secret rotation's overlap, the previous secret signs too.
        let secrets = [try d.decode("secret", as: String.self)] + [d.text("previous_secret")].compactMap { $0 }
        let body = Data(try d.decode("body", as: String.self).utf8)
        let attempt = try d.decode("attempts", as: Int.self) + 1
        // A redelivery asked for during this attempt keeps the delivery pending for its retry event.
        let asked = try d.decode("redeliveries", as: Int.self)
        let timestamp = Int(Date().timeIntervalSince1970)
        var status: Int?, failure: String?, retryAfter: Double?
        let started = ContinuousClock.now
        do {
            let pins = try Webhooks.checkURL(url, allowPrivate: try d.decode("allow_private"))
            let response = try await client.send(HTTPClientRequest(method: "POST", url: url, headers: [
                ("Content-Type", "application/json"), ("User-Agent", "almanac-webhooks/1"),
                ("webhook-id", webhookID), ("webhook-timestamp", String(timestamp)),
                ("webhook-signature", Webhooks.signatures(secrets: secrets, id: webhookID, timestamp: timestamp, body: body)),
            ], body: body, timeout: 15, connectTimeout: 5, maxBodyBytes: Self.maxResponseBytes, truncateBody: true, resolve: pins))
            status = response.status
            retryAfter = response.header("retry-after").flatMap { RetrySchedule.retryAfterSeconds($0) }
            if !(200..<300).contains(response.status) {
                failure = "HTTP \(response.status): " + String(decoding: response.body.prefix(200), as: UTF8.self)
            }
        } catch let e as PipelineError {
            failure = e.message
            status = 0  // refused by policy: not retried
        } catch {
            failure = "\(error)"
        }
        let ms = Int((ContinuousClock.now - started) / .milliseconds(1))
        try await db.execute("INSERT INTO webhook_attempts (delivery_id, attempt, status, error, duration_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                             [id, attempt, status == 0 ? nil : status, failure, ms])
        let meta: Logger.Metadata = ["delivery": "\(id)", "webhook_id": "\(webhookID)", "attempt": "\(attempt)", "status": "\(status ?? -1)"]
        if let s = status, (200..<300).contains(s) {
            try await db.execute("""
                UPDATE webhook_deliveries SET state = CASE WHEN redeliveries > $4 THEN 'pending' ELSE 'delivered' END,
                    attempts = $2, last_status = $3, last_error = NULL, delivered_at = now() WHERE id = $1
                """, [id, attempt, s, asked])
            context.logger.info("webhook delivered", metadata: meta)
        } else if status != 0, RetrySchedule.isRetriable(status: status), let delay = schedule.delay(after: attempt, retryAfter: retryAfter) {
            let next = Date().addingTimeInterval(delay)
            try await db.execute("UPDATE webhook_deliveries SET attempts = $2, last_status = $3, last_error = $4, next_attempt_at = $5 WHERE id = $1",
                                 [id, attempt, status, failure, next])
            context.emit(WebhookRetry(deliveryID: id, attempt: attempt + 1), at: next)
            context.logger.warning("webhook attempt failed; will retry", metadata: meta.merging(["error": "\(failure ?? "")", "retry_in_s": "\(delay.rounded())"]) { a, _ in a })
        } else {
            try await db.execute("""
                UPDATE webhook_deliveries SET state = CASE WHEN redeliveries > $5 THEN 'pending' ELSE 'failed' END,
                    attempts = $2, last_status = $3, last_error = $4 WHERE id = $1
                """, [id, attempt, status == 0 ? nil : status, failure, asked])
            if status == 410 {
                try await db.execute("UPDATE webhook_endpoints SET disabled_at = now(), disabled_why = 'receiver answered 410 Gone' WHERE id = $1",
                                     [try d.decode("endpoint", as: String.self)])
            }
            context.logger.warning("webhook delivery failed", metadata: meta.merging(["error": "\(failure ?? "")"]) { a, _ in a })
        }
    }
}
