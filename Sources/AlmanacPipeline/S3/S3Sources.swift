import AlmanacCore
import AlmanacPostgres
import Foundation

/// A rule that makes new objects in an S3-compatible bucket a dataset's data arrivals: the
/// bucket and key prefix it covers, where the store answers, and the name of the tenant's
/// secret holding the key pair (never the key itself).
public struct S3Source: Sendable, Equatable {
    /// `src_…`.
    public var id: String
    /// The owner.
    public var tenant: String
    /// The dataset its objects go to.
    public var dataset: String
    /// The bucket.
    public var bucket: String
    /// The key prefix covered ("" for the whole bucket).
    public var prefix: String
    /// The store's base URL: `https://s3.eu-west-1.amazonaws.com`, `http://minio:9000`.
    public var endpoint: String
    /// The signing region (`us-east-1` for most S3-compatible stores).
    public var region: String
    /// Path-style addressing (`endpoint/bucket/key`, MinIO's and Ceph's) or virtual-hosted
    /// (`bucket.endpoint-host/key`, AWS's).
    public var pathStyle: Bool
    /// The tenant's secret holding the key pair (`S3Credentials`).
    public var credentials: String

    /// Makes a rule.
    public init(id: String = "", tenant: String, dataset: String, bucket: String, prefix: String = "", endpoint: String,
                region: String = "us-east-1", pathStyle: Bool = true, credentials: String) {
        (self.id, self.tenant, self.dataset, self.bucket, self.prefix) = (id, tenant, dataset, bucket, prefix)
        (self.endpoint, self.region, self.pathStyle, self.credentials) = (endpoint, region, pathStyle, credentials)
    }

    /// What is wrong with the rule, or nil.
    public var problem: String? {
        if !S3Object.isValidBucket(bucket) {
            return "bucket \(EventLimits.quoted(bucket)) is not an S3 bucket name: 3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit"
        }
        if prefix.utf8.count > 1024 || prefix.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return "prefix must be at most 1024 bytes without control characters"
        }
        guard let u = URL(string: endpoint), let scheme = u.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = u.host, !host.isEmpty, u.query == nil, u.user == nil, u.path.isEmpty || u.path == "/" else {
            return "endpoint \(EventLimits.quoted(endpoint)) must be an http(s) URL of the store without path, query or credentials, e.g. https://s3.eu-west-1.amazonaws.com"
        }
        if region.isEmpty || region.utf8.count > 40 || !region.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }) {
            return "region \(EventLimits.quoted(region)) must be lower-case letters, digits and '-', e.g. us-east-1"
        }
        return Slug.problem(credentials, what: "credentials (the name of a secret of the tenant's)", maxLength: Slug.maxDatasetLength)
    }

    /// Whether the rule covers the object.
    public func covers(bucket: String, key: String) -> Bool { bucket == self.bucket && key.hasPrefix(prefix) }
}

/// Reads and writes `s3_sources`.
public enum S3Sources {
    /// Adds a rule for an existing dataset of the tenant.
    /// - Returns: the rule with its id.
    /// - Throws: `PipelineError` when the rule is invalid, the dataset missing, or the bucket
    ///   and prefix already belong to a rule (of any tenant: a bucket's notifications name no tenant).
    public static func add(_ rule: S3Source, in db: PostgresConnection) async throws -> S3Source {
        if let problem = rule.problem { throw PipelineError(problem) }
        var made = rule
        made.id = "src_" + Webhooks.randomHex(8)
        let rows = try await db.query("""
            INSERT INTO s3_sources (id, tenant, dataset, bucket, prefix, endpoint, region, path_style, credentials)
            SELECT $1, tenant, name, $4, $5, $6, $7, $8, $9 FROM datasets WHERE tenant = $2 AND name = $3
            ON CONFLICT (bucket, prefix) DO NOTHING RETURNING id
            """, [made.id, rule.tenant, rule.dataset, rule.bucket, rule.prefix, rule.endpoint, rule.region, rule.pathStyle, rule.credentials])
        guard rows.isEmpty else { return made }
        guard try await DatasetStore.find(tenant: rule.tenant, name: rule.dataset, in: db) != nil else {
            throw PipelineError("tenant \(rule.tenant) has no dataset \(rule.dataset)")
        }
        throw PipelineError("bucket \(rule.bucket) with prefix \(EventLimits.quoted(rule.prefix)) already has a source rule")
    }

    /// The tenant's rules (of one dataset, when given), oldest first.
    public static func list(tenant: String, dataset: String? = nil, in db: PostgresConnection) async throws -> [S3Source] {
        try await db.query("""
            SELECT * FROM s3_sources WHERE tenant = $1 AND ($2::text IS NULL OR dataset = $2) ORDER BY created_at, id LIMIT 1000
            """, [tenant, dataset]).map(source(from:))
    }

    /// Removes one of the tenant's rules.
    /// - Returns: false when the tenant has no such rule.
    public static func remove(id: String, tenant: String, in db: PostgresConnection) async throws -> Bool {
        try await db.execute("DELETE FROM s3_sources WHERE id = $1 AND tenant = $2", [id, tenant]) == 1
    }

    /// The rule an object falls under: the one with the longest prefix that matches, among
    /// the tenant's rules, or every tenant's when `tenant` is nil (a topic the operator
    /// connected a store to, whose notifications name no tenant).
    public static func match(bucket: String, key: String, tenant: String?, in db: PostgresConnection) async throws -> S3Source? {
        try await db.query("""
            SELECT * FROM s3_sources WHERE bucket = $1 AND starts_with($2, prefix) AND ($3::text IS NULL OR tenant = $3)
            ORDER BY length(prefix) DESC LIMIT 1
            """, [bucket, key, tenant]).first.map(source(from:))
    }

    static func source(from r: PostgresRow) throws -> S3Source {
        S3Source(id: try r.decode("id"), tenant: try r.decode("tenant"), dataset: try r.decode("dataset"), bucket: try r.decode("bucket"),
                 prefix: try r.decode("prefix"), endpoint: try r.decode("endpoint"), region: try r.decode("region"),
                 pathStyle: try r.decode("path_style"), credentials: try r.decode("credentials"))
    }
}
