import AlmanacCore
import AlmanacHTTP
import AlmanacPostgres
import Crypto
import Foundation

/// A webhook endpoint: where events of some types are delivered, signed with its secret.
public struct WebhookEndpoint: Sendable {
    /// `ep_` and random hex.
    public var id: String
    /// The owning tenant.
    public var tenant: String
    /// The receiver.
    public var url: String
    /// CloudEvent types; a trailing `*` matches by prefix.
    public var eventTypes: [String]
    /// `whsec_` and base64 of the signing key.
    public var secret: String
    /// Whether loopback and private addresses are allowed.
    public var allowPrivate: Bool

    /// Whether the endpoint wants events of `type`.
    public func wants(_ type: String) -> Bool {
        eventTypes.contains { $0.hasSuffix("*") ? type.hasPrefix(String($0.dropLast())) : $0 == type }
    }
}

/// Webhook endpoints and deliveries in Postgres; signing per Standard Webhooks.
public enum Webhooks {
    /// Adds an endpoint with a new secret.
    /// - Throws: `PipelineError` for a URL that is not http(s), a type list that is empty, or an address that is refused.
    public static func add(tenant: String, url: String, eventTypes: [String], allowPrivate: Bool, in db: PostgresConnection) async throws -> WebhookEndpoint {
        try checkURL(url, allowPrivate: allowPrivate)
        let types = eventTypes.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !types.isEmpty else { throw PipelineError("--events needs at least one event type, e.g. almanac.forecast.*") }
        for t in types where t.range(of: #"^[a-zA-Z0-9._-]+\*?$|^\*$"#, options: .regularExpression) == nil {
            throw PipelineError("event type \"\(t)\" is not a CloudEvent type or a prefix ending in *")
        }
        let endpoint = WebhookEndpoint(id: "ep_" + randomHex(12), tenant: tenant, url: url, eventTypes: types,
                                       secret: "whsec_" + Data(randomBytes(24)).base64EncodedString(), allowPrivate: allowPrivate)
        try await db.execute("""
            INSERT INTO webhook_endpoints (id, tenant, url, event_types, secret, allow_private) VALUES ($1, $2, $3, $4, $5, $6)
            """, [endpoint.id, tenant, url, types, endpoint.secret, allowPrivate])
        return endpoint
    }

    /// The tenant's endpoints that are not disabled.
    public static func endpoints(tenant: String, in db: PostgresConnection) async throws -> [WebhookEndpoint] {
        let rows = try await db.query("""
            SELECT id, url, array_to_string(event_types, ',') AS types, secret, allow_private FROM webhook_endpoints
            WHERE tenant = $1 AND disabled_at IS NULL AND deleted_at IS NULL ORDER BY created_at, id
            """, [tenant])
        return try rows.map { r in
            WebhookEndpoint(id: try r.decode("id"), tenant: tenant, url: try r.decode("url"),
                            eventTypes: (r.text("types") ?? "").split(separator: ",").map(String.init), secret: try r.decode("secret"),
                            allowPrivate: try r.decode("allow_private"))
        }
    }

    /// A tenant's endpoint as the API lists it (no secret).
    public struct Listed: Sendable, Equatable {
        /// Its id and URL.
        public var id: String, url: String
        /// The event types (or prefixes) it wants.
        public var eventTypes: [String]
        /// Whether it may be on a private network.
        public var allowPrivate: Bool
        /// Why it was disabled, when it was.
        public var disabledWhy: String?
        /// When it was added.
        public var createdAt: Date
    }

    /// The tenant's endpoints that are not deleted, oldest first (at most 1000).
    public static func listing(tenant: String, in db: PostgresConnection) async throws -> [Listed] {
        try await db.query("""
            SELECT id, url, array_to_string(event_types, ',') AS types, allow_private, disabled_why, created_at FROM webhook_endpoints
            WHERE tenant = $1 AND deleted_at IS NULL ORDER BY created_at, id LIMIT 1000
            """, [tenant]).map { r in
            Listed(id: try r.decode("id"), url: try r.decode("url"), eventTypes: (r.text("types") ?? "").split(separator: ",").map(String.init),
                   allowPrivate: try r.decode("allow_private"), disabledWhy: r.text("disabled_why"), createdAt: try r.decode("created_at"))
        }
    }

    /// Whether the tenant has endpoint `id` (deleted ones included: their deliveries stay readable).
    public static func exists(_ id: String, tenant: String, in db: PostgresConnection) async throws -> Bool {
        try await !db.query("SELECT 1 FROM webhook_endpoints WHERE id = $1 AND tenant = $2", [id, tenant]).isEmpty
    }

    /// Deletes the tenant's endpoint (kept for its deliveries); false when it has none of that id.
    public static func delete(_ id: String, tenant: String, in db: PostgresConnection) async throws -> Bool {
        try await db.execute("UPDATE webhook_endpoints SET deleted_at = now() WHERE id = $1 AND tenant = $2 AND deleted_at IS NULL",
                             [id, tenant]) == 1
    }

    /// Gives an endpoint of the tenant a new secret; the old one goes on signing beside it
    /// (two `v1,` signatures in one header, as Standard Webhooks allows) for `overlap` seconds,
    /// so a receiver can switch to the new secret without refusing a delivery.
    /// - Returns: the new secret.
    /// - Throws: `PipelineError` when the tenant has no such endpoint or the overlap is out of bounds.
    public static func rotateSecret(endpoint id: String, tenant: String, overlap: Double, in db: PostgresConnection) async throws -> String {
        guard overlap.isFinite, overlap >= 0, overlap <= 7 * 86_400 else {
            throw PipelineError("the overlap must be between 0 and 7 days, got \(overlap) s")
        }
        let secret = "whsec_" + Data(randomBytes(24)).base64EncodedString()
        let n = try await db.execute("""
            UPDATE webhook_endpoints SET previous_secret = secret, previous_until = now() + make_interval(secs => $3), secret = $4
            WHERE id = $1 AND tenant = $2 AND deleted_at IS NULL
            """, [id, tenant, overlap, secret])
        guard n == 1 else { throw PipelineError("tenant \(tenant) has no webhook endpoint \(EventLimits.quoted(id)); see `almanac webhooks list`") }
        return secret
    }

    /// Asks for one of the tenant's deliveries to be sent again: marks it pending, due now, and
    /// counts the request, so that an attempt in flight meanwhile leaves it pending (see
    /// `NotifyFunction.deliver`). The caller then publishes the `almanac.webhook.retry` event.
    /// - Returns: whether the tenant has such a delivery (to a live endpoint).
    public static func requestRedelivery(_ id: Int64, tenant: String, in db: PostgresConnection) async throws -> Bool {
        try await db.execute("""
            UPDATE webhook_deliveries d SET state = 'pending', next_attempt_at = now(), redeliveries = d.redeliveries + 1
            FROM webhook_endpoints e WHERE d.id = $1 AND e.id = d.endpoint_id AND e.tenant = $2 AND e.deleted_at IS NULL
            """, [id, tenant]) == 1
    }

    /// The `webhook-signature` header for a delivery: one `v1,` signature per secret, space-separated.
    public static func signatures(secrets: [String], id: String, timestamp: Int, body: Data) -> String {
        secrets.map { signature(secret: $0, id: id, timestamp: timestamp, body: body) }.joined(separator: " ")
    }

    /// The `webhook-signature` value: `v1,` and base64 of HMAC-SHA256 over `id.timestamp.body`
    /// keyed with the secret's base64-decoded part after `whsec_`.
    public static func signature(secret: String, id: String, timestamp: Int, body: Data) -> String {
        let key = SymmetricKey(data: Data(base64Encoded: String(secret.dropFirst("whsec_".count))) ?? Data(secret.utf8))
        var message = Data("\(id).\(timestamp).".utf8)
        message.append(body)
        return "v1," + Data(HMAC<SHA256>.authenticationCode(for: message, using: key)).base64EncodedString()
    }

    /// Refuses URLs that are not http(s), and — unless allowed — hosts that resolve to
    /// loopback, private, link-local or unspecified addresses (no webhook into the internal network).
    /// - Returns: the approved addresses as `CURLOPT_RESOLVE` entries for the request
    ///   (`HTTPClientRequest.resolve`), so it connects to exactly what was checked and a DNS
    ///   server answering differently the second time (DNS rebinding) cannot redirect it; empty
    ///   when nothing was resolved (private hosts allowed, or an IP literal).
    @discardableResult
    public static func checkURL(_ url: String, allowPrivate: Bool) throws -> [String] {
        guard let u = URL(string: url), let scheme = u.scheme?.lowercased(), scheme == "http" || scheme == "https", let host = u.host, !host.isEmpty else {
            throw PipelineError("webhook URL \"\(url)\" must be an absolute http:// or https:// URL")
        }
        guard !allowPrivate else { return [] }
        let addresses = resolve(host)
        guard !addresses.isEmpty else { throw PipelineError("webhook host \(host) does not resolve") }
        if let bad = addresses.first(where: isPrivate) {
            throw PipelineError("webhook host \(host) resolves to \(bad), a loopback or private address; add the endpoint with --allow-private if that is intended")
        }
        return pin(host: host, port: u.port ?? (scheme == "https" ? 443 : 80), addresses: addresses)
    }

    /// The `CURLOPT_RESOLVE` entry tying `host:port` to the addresses (IPv6 in brackets);
    /// none for an IP literal, which no DNS answer can change.
    static func pin(host: String, port: Int, addresses: [String]) -> [String] {
        let bare = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        var v4 = in_addr(), v6 = in6_addr()
        if inet_pton(AF_INET, bare, &v4) == 1 || inet_pton(AF_INET6, bare, &v6) == 1 { return [] }
        var seen = Set<String>()
        let list = addresses.filter { seen.insert($0).inserted }.map { $0.contains(":") ? "[\($0)]" : $0 }
        return ["\(host):\(port):" + list.joined(separator: ",")]
    }

    /// The host's addresses as text.
    static func resolve(_ host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0 else { return [] }
        defer { freeaddrinfo(result) }
        var out: [String] = []
        var p = result
        while let ai = p {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(ai.pointee.ai_addr, ai.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                out.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            p = ai.pointee.ai_next
        }
        return out
    }

    /// Whether an address is loopback, private (RFC 1918, fc00::/7), link-local, CGNAT or unspecified.
    static func isPrivate(_ address: String) -> Bool {
        let a = address.lowercased()
        if a.hasPrefix("::ffff:"), a.dropFirst(7).contains(".") { return isPrivate(String(a.dropFirst(7))) }  // IPv4-mapped
        if a.contains(":") {
            return a == "::1" || a == "::" || a.hasPrefix("fc") || a.hasPrefix("fd") || a.hasPrefix("fe80")
        }
        let o = a.split(separator: ".").compactMap { Int($0) }
        guard o.count == 4 else { return true }
        return o[0] == 127 || o[0] == 10 || o[0] == 0 || (o[0] == 172 && (16...31).contains(o[1])) || (o[0] == 192 && o[1] == 168)
            || (o[0] == 169 && o[1] == 254) || (o[0] == 100 && (64...127).contains(o[1]))
    }

    static func randomBytes(_ n: Int) -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
    }

    static func randomHex(_ n: Int) -> String { Hex.lowercase(randomBytes(n)) }
}

/// When a failed delivery is tried again: Standard Webhooks' schedule (5 s, 5 min, 30 min,
/// 2 h, 5 h, 10 h, 10 h: about 28 hours in all), each delay with ±20% jitter; `scale`
/// shrinks it for tests.
public struct RetrySchedule: Sendable {
    /// The delays after attempts 1, 2, … in seconds.
    public var delays: [Double] = [5, 300, 1800, 7200, 18_000, 36_000, 36_000]
    /// Multiplies every delay.
    public var scale: Double

    /// Makes the schedule.
    public init(scale: Double = 1) { self.scale = scale }

    /// The delay after `attempt` (from 1), or nil when the attempts are spent; `retryAfter`
    /// (seconds, from a 429 or 503) is honoured when longer, up to the whole schedule's span.
    public func delay(after attempt: Int, retryAfter: Double? = nil) -> Double? {
        guard attempt >= 1, attempt <= delays.count else { return nil }
        let jittered = delays[attempt - 1] * scale * Double.random(in: 0.8...1.2)
        let asked = retryAfter.map { $0.isFinite ? min(max($0, 0), horizon) : 0 } ?? 0
        return max(jittered, asked)
    }

    /// The longest a receiver may push a retry back: the schedule's whole span (about 28 hours).
    public var horizon: Double { delays.reduce(0, +) * scale }

    /// Reads a `Retry-After` value (RFC 9110 §10.2.3): a whole number of seconds, or an
    /// HTTP date (IMF-fixdate, or the obsolete RFC 850 and asctime forms), as seconds from
    /// `now`. Anything else (negative, fractional, `1e19`, garbage) is nil; a date in the
    /// past is 0. Callers clamp the result to the retry horizon.
    public static func retryAfterSeconds(_ header: String, now: Date = Date()) -> Double? {
        let text = header.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        if text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) {
            return text.utf8.count > 12 ? Double(999_999_999_999) : Double(text)
        }
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = TimeZone(identifier: "GMT")
            f.dateFormat = format
            if let date = f.date(from: text) { return max(0, date.timeIntervalSince(now)) }
        }
        return nil
    }

    /// Whether a response or failure is worth retrying: 5xx, 408, 429, timeouts, connection errors.
    public static func isRetriable(status: Int?) -> Bool {
        guard let s = status else { return true }
        return s >= 500 || s == 408 || s == 429
    }
}
