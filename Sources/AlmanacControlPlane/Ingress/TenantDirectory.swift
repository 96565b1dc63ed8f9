import AlmanacFunctions
import AlmanacCore
import AlmanacPostgres
import Crypto
import Foundation

/// What a bearer token may do. `admin` may do everything its tenant may.
public enum TokenScope: String, Sendable, CaseIterable {
    /// Publish events (`POST /events`).
    case publish
    /// Read the tenant's datasets, forecasts, deliveries and metrics.
    case read
    /// Everything: publish, read, and manage the tenant's datasets and webhooks.
    case admin

    /// Whether a token of this scope may act where `needed` is required.
    public func allows(_ needed: TokenScope) -> Bool { self == .admin || self == needed }

}

/// Who a bearer token speaks for.
public struct Credential: Sendable, Equatable {
    /// The tenant.
    public var tenant: String
    /// What the token may do.
    public var scope: TokenScope
    /// The token's public id (`tok_…`), as `almanac tokens list` shows it.
    public var tokenID: String
}

/// A token as `almanac tokens list` shows it (never the secret itself).
public struct TokenRecord: Sendable {
    /// The public id.
    public var id: String
    /// Its tenant.
    public var tenant: String
    /// Its scope.
    public var scope: TokenScope
    /// When it was made.
    public var createdAt: Date
    /// When it stops working, if it expires.
    public var expiresAt: Date?
    /// When it was revoked, if it was.
    public var revokedAt: Date?
}

/// Tenants and their bearer tokens. Only a token's SHA-256 digest is stored, and only the
/// digest is sent to Postgres. Every request is checked against the table (no cache), so a
/// revoked or expired token stops working at once, on every ingress replica.
public final class TenantDirectory: Sendable {
    let database: PostgresConnection

    /// Makes a directory over the `tenants` and `tenant_tokens` tables.
    public init(database: PostgresConnection) { self.database = database }

    /// The credential a token is, or nil when it is unknown, revoked or expired.
    public func credential(forToken token: String) async throws -> Credential? {
        let rows = try await database.query(prepared: "WITH \(Self.credentialQuery) SELECT * FROM credential", [Self.digest(token)])
        return try rows.first.flatMap(Self.credential(from:))
    }

    /// A common table expression `credential` over parameter `$1`, a token's `digest`: one
    /// row (`token_id`, `token_tenant`, `token_scope`) for a working token, none otherwise.
    /// A route that must answer in one round trip (the forecast query) joins its data to it,
    /// so the token is checked in the same statement that reads what it asks for.
    public static let credentialQuery = """
        credential AS (SELECT id AS token_id, tenant AS token_tenant, scope AS token_scope FROM tenant_tokens
                       WHERE token_sha256 = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()))
        """

    /// The credential in a row holding `credentialQuery`'s columns.
    public static func credential(from r: PostgresRow) throws -> Credential? {
        guard let scope = TokenScope(rawValue: try r.decode("token_scope")) else { return nil }
        return Credential(tenant: try r.decode("token_tenant"), scope: scope, tokenID: try r.decode("token_id"))
    }

    /// The hex SHA-256 of a token: what the table keeps, and what is sent to Postgres.
    public static func digest(_ token: String) -> String { Hex.lowercase(SHA256.hash(data: Data(token.utf8))) }

    /// A new random token: `alm_` and 32 random bytes as base64url.
    public static func newToken() -> String {
        "alm_" + Data(randomBytes(32)).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func randomBytes(_ n: Int) -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
    }

    /// Creates a tenant, if it does not exist, and makes `token` one of its admin tokens, if it
    /// is not already (`up` keeps the default tenant's token this way across runs).
    /// - Throws: `InvalidName` when the name is not a `Slug` (it names the tenant's folders).
    public static func ensure(tenant: String, token: String, in db: PostgresConnection) async throws {
        try Slug.check(tenant, what: "tenant", maxLength: Slug.maxTenantLength)
        try await db.transaction { tx in
            try await tx.exec("INSERT INTO tenants (id) VALUES ($1) ON CONFLICT DO NOTHING", [tenant])
            try await tx.exec("""
                INSERT INTO tenant_tokens (id, tenant, scope, token_sha256) VALUES ($1, $2, 'admin', $3)
                ON CONFLICT (token_sha256) DO NOTHING
                """, [newTokenID(), tenant, digest(token)])
        }
    }

    /// Creates a tenant with its first admin token.
    /// - Returns: the token (shown once: only its digest is kept) and its id.
    /// - Throws: `InvalidName` for a name that is not a `Slug`; `TenantError` when it exists.
    public static func create(tenant: String, in db: PostgresConnection) async throws -> (token: String, id: String) {
        try Slug.check(tenant, what: "tenant", maxLength: Slug.maxTenantLength)
        let made = try await db.exec("INSERT INTO tenants (id) VALUES ($1) ON CONFLICT DO NOTHING", [tenant])
        guard made == 1 else { throw TenantError("tenant \(tenant) exists already; see `almanac tenants list`") }
        return try await createToken(tenant: tenant, scope: .admin, expires: nil, in: db)
    }

    /// Makes a token for an existing tenant.
    /// - Returns: the token (shown once) and its id.
    /// - Throws: `TenantError` when the tenant does not exist or the expiry is not in the future.
    public static func createToken(tenant: String, scope: TokenScope, expires: Date?, in db: PostgresConnection) async throws -> (token: String, id: String) {
        if let expires, expires <= Date() { throw TenantError("--expires must be in the future, got \(RFC3339.format(expires))") }
        let token = newToken(), id = newTokenID()
        let made = try await db.exec("""
            INSERT INTO tenant_tokens (id, tenant, scope, token_sha256, expires_at)
            SELECT $1, id, $3, $4, $5 FROM tenants WHERE id = $2
            """, [id, tenant, scope.rawValue, digest(token), expires])
        guard made == 1 else { throw TenantError("no tenant \(EventLimits.quoted(tenant)); create it with `almanac tenants create NAME`") }
        return (token, id)
    }

    /// Revokes a token; it is refused from the next request on.
    /// - Returns: false when no unrevoked token has that id.
    @discardableResult
    public static func revoke(tokenID: String, in db: PostgresConnection) async throws -> Bool {
        try await db.exec("UPDATE tenant_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", [tokenID]) == 1
    }

    /// The tenants, with their number of working tokens.
    public static func tenants(in db: PostgresConnection) async throws -> [(name: String, createdAt: Date, activeTokens: Int)] {
        try await db.query("""
            SELECT t.id, t.created_at, count(k.id) FILTER (WHERE k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())) AS active
            FROM tenants t LEFT JOIN tenant_tokens k ON k.tenant = t.id GROUP BY t.id, t.created_at ORDER BY t.id
            """).map { (try $0.decode("id"), try $0.decode("created_at"), try $0.decode("active", as: Int.self)) }
    }

    /// The tokens (of one tenant, or all), oldest first.
    public static func tokens(tenant: String?, in db: PostgresConnection) async throws -> [TokenRecord] {
        try await db.query("""
            SELECT id, tenant, scope, created_at, expires_at, revoked_at FROM tenant_tokens
            WHERE $1::text IS NULL OR tenant = $1 ORDER BY created_at, id
            """, [tenant]).map { r in
            TokenRecord(id: try r.decode("id"), tenant: try r.decode("tenant"), scope: TokenScope(rawValue: try r.decode("scope")) ?? .read,
                        createdAt: try r.decode("created_at"), expiresAt: try r.decodeIfPresent("expires_at"),
                        revokedAt: try r.decodeIfPresent("revoked_at"))
        }
    }

    /// A new public token id: `tok_` and 16 hex digits.
    static func newTokenID() -> String { "tok_" + Hex.lowercase(randomBytes(8)) }
}

/// A tenant or token request that cannot be done, and why.
public struct TenantError: Error, CustomStringConvertible, Sendable {
    /// What is wrong.
    public var message: String
    /// Makes an error.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}
