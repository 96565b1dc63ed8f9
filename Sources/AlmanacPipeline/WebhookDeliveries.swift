import AlmanacPostgres
import Foundation

/// Deliveries of events to webhook endpoints (`webhook_deliveries`) and every attempt at them
/// (`webhook_attempts`). The notify function writes them as it goes, outside the commit
/// transaction on purpose: a POST that reached a receiver stays on record even when the
/// handler fails after it, and a redelivery asked for meanwhile is not overwritten.
public enum WebhookDeliveries {
    /// A pending or finished delivery, with what its next attempt needs of its endpoint.
    public struct Delivery: Sendable {
        /// The delivery's `webhook-id`.
        public var webhookID: String
        /// The signed body (the structured CloudEvent).
        public var body: String
        /// `pending`, `delivered` or `failed`.
        public var state: String
        /// Attempts made.
        public var attempts: Int
        /// Redeliveries asked for so far.
        public var redeliveries: Int
        /// The endpoint's id and URL.
        public var endpointID: String, url: String
        /// The current secret, and the previous one during a rotation's overlap.
        public var secret: String, previousSecret: String?
        /// Whether the endpoint may be on a private network.
        public var allowPrivate: Bool
        /// Whether the endpoint was disabled or deleted.
        public var endpointGone: Bool
    }

    /// The delivery of `eventID` to an endpoint, made pending when new; its id either way.
    public static func open(endpointID: String, eventID: String, eventType: String, webhookID: String, body: String,
                            in db: PostgresConnection) async throws -> Int {
        try await db.execute("""
            INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, webhook_id, body) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (endpoint_id, event_id) DO NOTHING
            """, [endpointID, eventID, eventType, webhookID, body])
        return try await db.query("SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = $2", [endpointID, eventID])[0].decode("id")
    }

    /// A delivery of the tenant's, with its endpoint, or nil (another tenant's is not found).
    public static func find(_ id: Int, tenant: String, in db: PostgresConnection) async throws -> Delivery? {
        guard let d = try await db.query("""
            SELECT d.webhook_id, d.body, d.state, d.attempts, d.redeliveries, e.id AS endpoint, e.url, e.secret, e.allow_private,
                   e.disabled_at IS NOT NULL OR e.deleted_at IS NOT NULL AS gone,
                   CASE WHEN e.previous_until > now() THEN e.previous_secret END AS previous_secret
            FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id = $1 AND e.tenant = $2
            """, [id, tenant]).first else { return nil }
        return Delivery(webhookID: try d.decode("webhook_id"), body: try d.decode("body"), state: try d.decode("state"),
                        attempts: try d.decode("attempts"), redeliveries: try d.decode("redeliveries"), endpointID: try d.decode("endpoint"),
                        url: try d.decode("url"), secret: try d.decode("secret"), previousSecret: d.text("previous_secret"),
                        allowPrivate: try d.decode("allow_private"), endpointGone: try d.decode("gone"))
    }

    /// Fails a pending delivery whose endpoint is gone.
    public static func failForGoneEndpoint(_ id: Int, in db: PostgresConnection) async throws {
        try await db.execute("UPDATE webhook_deliveries SET state = 'failed', last_error = 'endpoint disabled or deleted' WHERE id = $1", [id])
    }

    /// Records one attempt (`status` nil when no HTTP answer came or policy refused the URL).
    public static func recordAttempt(_ id: Int, attempt: Int, status: Int?, error: String?, milliseconds: Int, in db: PostgresConnection) async throws {
        try await db.execute("INSERT INTO webhook_attempts (delivery_id, attempt, status, error, duration_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                             [id, attempt, status, error, milliseconds])
    }

    /// The attempt succeeded: delivered, unless a redelivery was asked for after `askedBefore` requests.
    public static func delivered(_ id: Int, attempt: Int, status: Int, askedBefore: Int, in db: PostgresConnection) async throws {
        try await db.execute("""
            UPDATE webhook_deliveries SET state = CASE WHEN redeliveries > $4 THEN 'pending' ELSE 'delivered' END,
                attempts = $2, last_status = $3, last_error = NULL, delivered_at = now() WHERE id = $1
            """, [id, attempt, status, askedBefore])
    }

    /// The attempt failed and another follows at `next`.
    public static func retrying(_ id: Int, attempt: Int, status: Int?, error: String?, next: Date, in db: PostgresConnection) async throws {
        try await db.execute("UPDATE webhook_deliveries SET attempts = $2, last_status = $3, last_error = $4, next_attempt_at = $5 WHERE id = $1",
                             [id, attempt, status, error, next])
    }

    /// The attempt failed for good: failed, unless a redelivery was asked for after `askedBefore` requests.
    public static func failed(_ id: Int, attempt: Int, status: Int?, error: String?, askedBefore: Int, in db: PostgresConnection) async throws {
        try await db.execute("""
            UPDATE webhook_deliveries SET state = CASE WHEN redeliveries > $5 THEN 'pending' ELSE 'failed' END,
                attempts = $2, last_status = $3, last_error = $4 WHERE id = $1
            """, [id, attempt, status, error, askedBefore])
    }

    /// Disables an endpoint whose receiver said it is gone for good.
    public static func disableEndpoint(_ endpointID: String, why: String, in db: PostgresConnection) async throws {
        try await db.execute("UPDATE webhook_endpoints SET disabled_at = now(), disabled_why = $2 WHERE id = $1", [endpointID, why])
    }

    /// A delivery as the API lists it.
    public struct Listed: Sendable, Equatable {
        /// Its id, event and `webhook-id`.
        public var id: Int64, eventID: String, eventType: String, webhookID: String
        /// `pending`, `delivered` or `failed`, and the attempts made.
        public var state: String, attempts: Int
        /// The last answer's status and error.
        public var lastStatus: Int?, lastError: String?
        /// When it was made and delivered.
        public var createdAt: Date, deliveredAt: Date?
    }

    /// An endpoint's deliveries, newest first, below id `before`.
    public static func page(endpointID: String, before: Int64?, limit: Int, in db: PostgresConnection) async throws -> [Listed] {
        try await db.query("""
            SELECT id, event_id, event_type, webhook_id, state, attempts, last_status, last_error, created_at, delivered_at FROM webhook_deliveries
            WHERE endpoint_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3
            """, [endpointID, before, limit]).map { r in
            Listed(id: try r.decode("id"), eventID: try r.decode("event_id"), eventType: try r.decode("event_type"),
                   webhookID: try r.decode("webhook_id"), state: try r.decode("state"), attempts: try r.decode("attempts"),
                   lastStatus: try r.decodeIfPresent("last_status"), lastError: r.text("last_error"),
                   createdAt: try r.decode("created_at"), deliveredAt: try r.decodeIfPresent("delivered_at"))
        }
    }
}
