import AlmanacCore
import Foundation

/// An object in an S3-compatible store, as a data arrival names it: `s3://bucket/key`.
public struct S3Object: Sendable, Equatable {
    /// The bucket.
    public var bucket: String
    /// The key (never empty).
    public var key: String

    /// Makes an object reference.
    public init(bucket: String, key: String) { (self.bucket, self.key) = (bucket, key) }

    /// Parses `s3://bucket/key`.
    /// - Throws: `PipelineError` saying what is wrong.
    public init(location: String) throws {
        guard location.lowercased().hasPrefix("s3://") else { throw PipelineError("\(EventLimits.quoted(location)) is not an s3:// URL") }
        let rest = location.dropFirst(5)
        guard let slash = rest.firstIndex(of: "/"), rest.index(after: slash) < rest.endIndex else {
            throw PipelineError("\(EventLimits.quoted(location)) names no object: give s3://bucket/key")
        }
        bucket = String(rest[..<slash])
        key = String(rest[rest.index(after: slash)...])
        guard Self.isValidBucket(bucket) else { throw PipelineError("\(EventLimits.quoted(bucket)) is not an S3 bucket name") }
        guard key.utf8.count <= 1024, !key.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw PipelineError("the key of \(EventLimits.quoted(location)) is over 1024 bytes or holds a control character")
        }
    }

    /// `s3://bucket/key`.
    public var location: String { "s3://\(bucket)/\(key)" }

    /// Whether a name is a valid bucket name: 3 to 63 lower-case letters, digits, dots and
    /// hyphens, starting and ending with a letter or digit.
    public static func isValidBucket(_ name: String) -> Bool {
        let b = Array(name.utf8)
        func alnum(_ c: UInt8) -> Bool { (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) }
        guard (3...63).contains(b.count), alnum(b[0]), alnum(b[b.count - 1]) else { return false }
        return b.allSatisfy { alnum($0) || $0 == 0x2E || $0 == 0x2D } && !name.contains("..")
    }

    /// The object's URL at the rule's endpoint: `endpoint/bucket/key` path-style, or
    /// `scheme://bucket.host[:port]/key` virtual-hosted; the key encoded as S3 signs it
    /// (every byte but unreserved ones and `/` percent-encoded).
    public func url(at source: S3Source) -> String {
        let base = source.endpoint.hasSuffix("/") ? String(source.endpoint.dropLast()) : source.endpoint
        let path = "/" + Self.encode(key)
        if source.pathStyle { return base + "/" + bucket + path }
        guard let scheme = base.range(of: "://") else { return base + "/" + bucket + path }
        return base[..<scheme.upperBound] + bucket + "." + base[scheme.upperBound...] + path
    }

    /// RFC 3986 encoding of a key, `/` kept: every byte but unreserved ones percent-encoded.
    static func encode(_ key: String) -> String {
        key.addingPercentEncoding(withAllowedCharacters: unreserved) ?? key
    }

    /// Letters, digits, `-._~` and `/`.
    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/")
}

/// A tenant's key pair for a store, found by the name a source rule gives: the files
/// `access_key_id`, `secret_access_key` (and `session_token`) in
/// `$ALMANAC_SECRETS_DIR/<tenant>/<name>/` (a mounted Kubernetes secret, say), or else the
/// environment's `ALMANAC_S3_<TENANT>_<NAME>_ACCESS_KEY_ID`, `…_SECRET_ACCESS_KEY` (and
/// `…_SESSION_TOKEN`), names upper-cased with `-` and `.` as `_`. Either way a tenant can
/// only name its own secrets. The secret is never logged, stored or put in an event.
public struct S3Credentials: Sendable {
    /// The access key id.
    public var accessKeyID: String
    /// The secret access key.
    public var secretAccessKey: String
    /// A session token, for temporary credentials.
    public var sessionToken: String?

    /// The tenant's secret of that name.
    /// - Throws: `PipelineError` naming where it was looked for (never its content).
    public static func resolve(_ name: String, tenant: String, environment env: [String: String]) throws -> S3Credentials {
        if let problem = Slug.problem(name, what: "credentials", maxLength: Slug.maxDatasetLength) { throw PipelineError(problem) }
        if let dir = env["ALMANAC_SECRETS_DIR"], !dir.isEmpty {
            let folder = URL(fileURLWithPath: dir).appendingPathComponent(tenant).appendingPathComponent(name)
            func read(_ file: String) -> String? {
                (try? String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            if let id = read("access_key_id"), let secret = read("secret_access_key"), !id.isEmpty, !secret.isEmpty {
                return S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: read("session_token"))
            }
        }
        let stem = "ALMANAC_S3_\(envName(tenant))_\(envName(name))_"
        if let id = env[stem + "ACCESS_KEY_ID"], let secret = env[stem + "SECRET_ACCESS_KEY"], !id.isEmpty, !secret.isEmpty {
            return S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: env[stem + "SESSION_TOKEN"])
        }
        throw PipelineError("tenant \(tenant) has no S3 credentials \(EventLimits.quoted(name)): the operator provides them as "
                                + "$ALMANAC_SECRETS_DIR/\(tenant)/\(name)/{access_key_id,secret_access_key} or \(stem)ACCESS_KEY_ID and \(stem)SECRET_ACCESS_KEY")
    }

    static func envName(_ s: String) -> String {
        String(s.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }
}
