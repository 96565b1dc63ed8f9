import AlmanacFunctions
import AlmanacCore
import AlmanacPostgres
import Crypto
import Foundation

/// Console sign-ins: a tenant token exchanged for a session whose secret travels only in an
/// `HttpOnly`, `SameSite=Strict` cookie. Only the secret's SHA-256 digest is stored. A
/// session speaks with its token's tenant and scope, and stops at once when the token is
/// revoked or expires, when the person signs out, or after `lifetime`.
///
/// Every request made with the cookie must also carry `X-Almanac-CSRF`, a value derived from
/// the secret that the console's script reads from `GET /console/session` (same origin only):
/// a page on another site can make the browser send the cookie, but cannot read or send that
/// header, so it cannot act in the person's name.
public enum ConsoleSession {
    /// The cookie's name.
    public static let cookieName = "almanac_session"
    /// The header that must repeat the session's CSRF value on every cookie-authenticated request.
    public static let csrfHeader = "x-almanac-csrf"
    /// How long a session lasts at most (never past its token's expiry).
    public static let lifetime: TimeInterval = 12 * 3600

    /// The session secret in a request's `Cookie` headers, if there is one of a plausible size.
    public static func secret(in headers: [(String, String)]) -> String? {
        for (name, value) in headers where name == "cookie" {
            for pair in value.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == cookieName else { continue }
                let secret = parts[1].trimmingCharacters(in: .whitespaces)
                if (20...200).contains(secret.utf8.count) { return secret }
            }
        }
        return nil
    }

    /// The CSRF value of a session: a digest of its secret under its own label, so that
    /// knowing it reveals nothing of the secret.
    public static func csrf(for secret: String) -> String {
        Hex.lowercase(SHA256.hash(data: Data(("almanac-console-csrf:" + secret).utf8)))
    }

    /// Whether a request's CSRF header matches its session (compared in constant time).
    public static func csrfMatches(_ headers: [(String, String)], secret: String) -> Bool {
        guard let sent = headers.first(where: { $0.0 == csrfHeader })?.1 else { return false }
        let expected = Array(csrf(for: secret).utf8), given = Array(sent.utf8)
        guard expected.count == given.count else { return false }
        return zip(expected, given).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// The `Set-Cookie` value that stores `secret` for `maxAge` seconds (0 clears it).
    /// - Parameter secure: adds `Secure` (the server is reached over HTTPS).
    public static func setCookie(_ secret: String, maxAge: Int, secure: Bool) -> String {
        "\(cookieName)=\(secret); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
    }
}

extension TenantDirectory {
    /// Starts a console session for a working token.
    /// - Returns: the session's secret (for the cookie), who it speaks for and when it ends;
    ///   nil when the token is unknown, revoked or expired.
    public func startSession(token: String) async throws -> (secret: String, credential: Credential, expires: Date)? {
        // `ses_` and 32 random bytes: never mistaken for a token (`alm_`) in a log or a paste.
        let secret = "ses_" + Self.newToken().dropFirst(4)
        // Sessions that ended long ago are forgotten as new ones begin.
        _ = try await database.exec("DELETE FROM console_sessions WHERE expires_at < now() - interval '1 day'", [])
        let rows = try await database.query("""
            INSERT INTO console_sessions (session_sha256, tenant, token_id, expires_at)
            SELECT $1, k.tenant, k.id, least(now() + make_interval(secs => $3), coalesce(k.expires_at, 'infinity'))
            FROM tenant_tokens k
            WHERE k.token_sha256 = $2 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
            RETURNING tenant AS token_tenant, token_id, expires_at,
                      (SELECT scope FROM tenant_tokens WHERE id = token_id) AS token_scope
            """, [Self.digest(secret), Self.digest(token), ConsoleSession.lifetime])
        guard let r = rows.first, let credential = try Self.credential(from: r) else { return nil }
        return (secret, credential, try r.decode("expires_at"))
    }

    /// The credential a console session speaks for, or nil when it ended, expired, or its
    /// token no longer works.
    public func credential(forSession secret: String) async throws -> Credential? {
        let rows = try await database.query(prepared: """
            SELECT k.id AS token_id, k.tenant AS token_tenant, k.scope AS token_scope
            FROM console_sessions s JOIN tenant_tokens k ON k.id = s.token_id
            WHERE s.session_sha256 = $1 AND s.ended_at IS NULL AND s.expires_at > now()
              AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
            """, [Self.digest(secret)])
        return try rows.first.flatMap(Self.credential(from:))
    }

    /// Ends a console session (sign-out); its cookie is refused from then on.
    public func endSession(secret: String) async throws {
        _ = try await database.exec("UPDATE console_sessions SET ended_at = now() WHERE session_sha256 = $1 AND ended_at IS NULL",
                                [Self.digest(secret)])
    }
}
