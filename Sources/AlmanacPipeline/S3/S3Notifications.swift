import AlmanacCore
import AlmanacPostgres
import Crypto
import Foundation

/// Bucket notifications as data arrivals. Reads the shapes stores send — S3 event
/// notifications (`Records[].s3.bucket.name`, `.object.key`, as AWS, MinIO and Ceph deliver
/// them to a webhook, a queue or a Kafka topic) and EventBridge's `Object Created` events —
/// and makes one `almanac.data.arrived` per new object that a source rule covers. The event's
/// id is derived from the bucket, key and the object's version (sequencer, version id or
/// ETag), so a notification delivered twice (stores deliver at least once) is one import.
public enum S3Notifications {
    /// A new object a notification announced.
    public struct Created: Sendable, Equatable {
        /// Where it is.
        public var object: S3Object
        /// Its size in bytes, when given.
        public var size: Int64?
        /// What tells this version of the object from another one at the same key.
        public var version: String
    }

    /// The most records one notification may hold.
    public static let maxRecords = 1000
    /// The source of the events made from notifications.
    public static let eventSource = "almanac/s3"

    /// The created objects a notification announces; records of other kinds (deletions, a
    /// store's test event) are left out.
    /// - Throws: `PipelineError` saying what is wrong and where (`Records[2].s3.object.key`).
    public static func created(in notification: JSONValue) throws -> [Created] {
        if notification["detail-type"]?.stringValue != nil {
            guard notification["detail-type"]?.stringValue == "Object Created" else { return [] }
            let d = notification["detail"] ?? .null
            return [try created(bucket: d["bucket"]?["name"], key: d["object"]?["key"], size: d["object"]?["size"],
                                version: d["object"]?["sequencer"] ?? d["object"]?["version-id"] ?? d["object"]?["etag"], at: "detail", decodeKey: false)]
        }
        guard let records = notification["Records"]?.arrayValue else {
            if notification["Event"]?.stringValue == "s3:TestEvent" { return [] }
            throw PipelineError("not an S3 event notification: it has no Records array (nor EventBridge's detail-type)")
        }
        guard records.count <= maxRecords else { throw PipelineError("a notification may hold at most \(maxRecords) records, this one has \(records.count)") }
        var out: [Created] = []
        for (i, r) in records.enumerated() {
            guard let name = r["eventName"]?.stringValue else { throw PipelineError("Records[\(i)].eventName is missing") }
            // "ObjectCreated:Put" from AWS, "s3:ObjectCreated:Put" from MinIO.
            guard name.hasPrefix("ObjectCreated:") || name.hasPrefix("s3:ObjectCreated:") else { continue }
            let o = r["s3"]?["object"] ?? .null
            out.append(try created(bucket: r["s3"]?["bucket"]?["name"], key: o["key"], size: o["size"],
                                   version: o["sequencer"] ?? o["versionId"] ?? o["eTag"], at: "Records[\(i)].s3", decodeKey: true))
        }
        return out
    }

    static func created(bucket: JSONValue?, key: JSONValue?, size: JSONValue?, version: JSONValue?, at path: String, decodeKey: Bool) throws -> Created {
        guard let bucket = bucket?.stringValue, S3Object.isValidBucket(bucket) else { throw PipelineError("\(path).bucket.name is missing or not a bucket name") }
        guard var key = key?.stringValue, !key.isEmpty else { throw PipelineError("\(path).object.key is missing") }
        if decodeKey {
            // Notification keys are URL-encoded, spaces as '+'.
            guard let decoded = key.replacingOccurrences(of: "+", with: " ").removingPercentEncoding else {
                throw PipelineError("\(path).object.key is not URL-encoded text")
            }
            key = decoded
        }
        let object = try S3Object(location: "s3://\(bucket)/\(key)")
        let n = size?.numberValue
        if let n, !(n >= 0 && n < 9e15) { throw PipelineError("\(path).object.size is not a size") }
        let v = version?.stringValue ?? version.map { $0.serialized() } ?? ""
        return Created(object: object, size: n.map { Int64($0) }, version: String(v.prefix(200)))
    }

    /// The data-arrival events for the objects, each through the rule that covers it (the
    /// tenant's rules only, or any tenant's when `tenant` is nil), and why the others made none.
    public static func arrivals(_ objects: [Created], tenant: String?, in db: PostgresConnection) async throws
        -> (events: [CloudEvent], ignored: [(object: String, reason: String)]) {
        var events: [CloudEvent] = [], ignored: [(String, String)] = []
        for c in objects {
            guard let rule = try await S3Sources.match(bucket: c.object.bucket, key: c.object.key, tenant: tenant, in: db) else {
                ignored.append((c.object.location, "no source rule\(tenant.map { " of tenant \($0)" } ?? "") covers it"))
                continue
            }
            var data: [String: JSONValue] = ["dataset": .string(rule.dataset), "url": .string(c.object.location), "s3_source": .string(rule.id)]
            if let size = c.size { data["size"] = .number(Double(size)) }
            var e = CloudEvent(id: eventID(c), source: eventSource, type: "almanac.data.arrived", subject: rule.dataset, json: .object(data))
            e.tenant = rule.tenant
            e.traceparent = CloudEvent.newTraceparent()
            events.append(e)
        }
        return (events, ignored)
    }

    /// `s3-` and a digest of bucket, key and version: the same object version, the same event.
    static func eventID(_ c: Created) -> String {
        let digest = SHA256.hash(data: Data([c.object.bucket, c.object.key, c.version].joined(separator: "\u{1F}").utf8))
        return "s3-" + Hex.lowercase(digest.prefix(16))
    }
}
