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
            let id = try await WebhookDeliveries.open(endpointID: endpoint.id, eventID: event.id, eventType: event.type, webhookID: webhookID,
                                                      body: body, in: db)
            try await deliver(id, context: context)
        }
    }

    /// One attempt at a pending delivery of the event's tenant; records it and decides what follows.
    /// - Parameter asAttempt: for a retry, the attempt it was scheduled as: a retry for any
    ///   other attempt (a stale duplicate, or a forged one) is ignored, so it spends nothing.
    func deliver(_ id: Int, context: FunctionContext, asAttempt: Int? = nil) async throws {
        let db = try context.database
        guard let d = try await WebhookDeliveries.find(id, tenant: context.event.tenant, in: db), d.state == "pending" else { return }
        if let asAttempt, asAttempt != d.attempts + 1 {
            context.logger.info("webhook retry ignored: not the attempt due", metadata: ["delivery": "\(id)", "attempt": "\(asAttempt)"])
            return
        }
        guard !d.endpointGone else {
            try await WebhookDeliveries.failForGoneEndpoint(id, in: db)
            return
        }
        let webhookID = d.webhookID, url = d.url
        // During a secret rotation's overlap, the previous secret signs too.
        let secrets = [d.secret] + [d.previousSecret].compactMap { $0 }
        let body = Data(d.body.utf8)
        let attempt = d.attempts + 1
        // A redelivery asked for during this attempt keeps the delivery pending for its retry event.
        let asked = d.redeliveries
        let timestamp = Int(Date().timeIntervalSince1970)
        var status: Int?, failure: String?, retryAfter: Double?
        let started = ContinuousClock.now
        do {
            let pins = try Webhooks.checkURL(url, allowPrivate: d.allowPrivate)
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
        try await WebhookDeliveries.recordAttempt(id, attempt: attempt, status: status == 0 ? nil : status, error: failure, milliseconds: ms, in: db)
        let meta: Logger.Metadata = ["delivery": "\(id)", "webhook_id": "\(webhookID)", "attempt": "\(attempt)", "status": "\(status ?? -1)"]
        if let s = status, (200..<300).contains(s) {
            try await WebhookDeliveries.delivered(id, attempt: attempt, status: s, askedBefore: asked, in: db)
            context.logger.info("webhook delivered", metadata: meta)
        } else if status != 0, RetrySchedule.isRetriable(status: status), let delay = schedule.delay(after: attempt, retryAfter: retryAfter) {
            let next = Date().addingTimeInterval(delay)
            try await WebhookDeliveries.retrying(id, attempt: attempt, status: status, error: failure, next: next, in: db)
            context.emit(WebhookRetry(deliveryID: id, attempt: attempt + 1), at: next)
            context.logger.warning("webhook attempt failed; will retry", metadata: meta.merging(["error": "\(failure ?? "")", "retry_in_s": "\(delay.rounded())"]) { a, _ in a })
        } else {
            try await WebhookDeliveries.failed(id, attempt: attempt, status: status == 0 ? nil : status, error: failure, askedBefore: asked, in: db)
            if status == 410 {
                try await WebhookDeliveries.disableEndpoint(d.endpointID, why: "receiver answered 410 Gone", in: db)
            }
            context.logger.warning("webhook delivery failed", metadata: meta.merging(["error": "\(failure ?? "")"]) { a, _ in a })
        }
    }
}
