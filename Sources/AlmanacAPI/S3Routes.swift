import AlmanacPipeline
import AlmanacControlPlane
import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import AlmanacFunctions
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// `/v1` for S3-compatible buckets: a dataset's source rules (add, list, remove) and the
/// endpoint a store's bucket notifications are sent to (`POST /v1/s3/notifications`, with a
/// publish token: only the token's tenant's rules apply).
extension ForecastAPI {
    /// The largest notification accepted.
    public static let maxNotificationBody = 1 << 20

    func addS3Routes(to router: Router<BasicRequestContext>, ingress: EventIngress) {
        router.post("/v1/datasets/:name/s3-sources") { request, context in
            await serve(request, ingress, needs: .admin) { c in try await addSource(request, dataset: try Self.datasetName(context), tenant: c.tenant) }
        }
        router.get("/v1/datasets/:name/s3-sources") { request, context in
            await serve(request, ingress, needs: .read) { c in
                let name = try Self.datasetName(context)
                guard try await DatasetStore.find(tenant: c.tenant, name: name, in: pool.next()) != nil else { throw Self.noDataset(name, c.tenant) }
                return Self.json(.ok, ["items": .array(try await S3Sources.list(tenant: c.tenant, dataset: name, in: pool.next()).map(Self.json))])
            }
        }
        router.delete("/v1/s3-sources/:id") { request, context in
            await serve(request, ingress, needs: .admin) { c in
                let id = context.parameters.get("id") ?? ""
                guard try await S3Sources.remove(id: id, tenant: c.tenant, in: pool.next()) else {
                    throw EventIngress.Problem(.notFound, "tenant \(c.tenant) has no S3 source \(EventLimits.quoted(id))")
                }
                return Response(status: .noContent)
            }
        }
        router.post("/v1/s3/notifications") { request, _ in
            await serve(request, ingress, needs: .publish) { c in try await notification(request, tenant: c.tenant, ingress: ingress) }
        }
    }

    func addSource(_ request: Request, dataset name: String, tenant: String) async throws -> Response {
        guard let o = try await Self.jsonBody(request).objectValue else { throw Self.bad("the body must be a JSON object with bucket, endpoint and credentials") }
        let members: Set<String> = ["bucket", "prefix", "endpoint", "region", "path_style", "credentials"]
        if let unknown = o.keys.sorted().first(where: { !members.contains($0) }) {
            throw Self.bad("unknown member \(EventLimits.quoted(unknown)); the members are \(members.sorted().joined(separator: ", "))")
        }
        func text(_ key: String, required: Bool) throws -> String? {
            guard let v = o[key] else {
                if required { throw Self.bad("\(key) is required and must be a string") }
                return nil
            }
            guard let s = v.stringValue else { throw Self.bad("\(key) must be a string") }
            return s
        }
        if let p = o["path_style"], p.boolValue == nil { throw Self.bad("path_style must be true or false") }
        let rule = S3Source(tenant: tenant, dataset: name, bucket: try text("bucket", required: true) ?? "", prefix: try text("prefix", required: false) ?? "",
                            endpoint: try text("endpoint", required: true) ?? "", region: try text("region", required: false) ?? "us-east-1",
                            pathStyle: o["path_style"]?.boolValue ?? true, credentials: try text("credentials", required: true) ?? "")
        if let problem = rule.problem { throw Self.bad(problem) }
        let made: S3Source
        do { made = try await S3Sources.add(rule, in: pool.next()) } catch let e as PipelineError {
            throw EventIngress.Problem(e.message.contains("has no dataset") ? .notFound : .conflict, e.message)
        }
        var response = Self.json(.created, Self.json(made))
        response.headers[.location] = "/v1/datasets/\(name)/s3-sources"
        return response
    }

    static func json(_ s: S3Source) -> JSONValue {
        ["id": .string(s.id), "dataset": .string(s.dataset), "bucket": .string(s.bucket), "prefix": .string(s.prefix), "endpoint": .string(s.endpoint),
         "region": .string(s.region), "path_style": .bool(s.pathStyle), "credentials": .string(s.credentials)]
    }

    /// One notification: an arrival for each new object a rule of the tenant covers, on the
    /// bus and archived before the 202; the others listed with why.
    func notification(_ request: Request, tenant: String, ingress: EventIngress) async throws -> Response {
        var r = request
        let body: JSONValue
        do {
            let bytes = try await r.collectBody(upTo: Self.maxNotificationBody)
            body = try JSONValue(parsing: Data(bytes.readableBytesView))
        } catch let e as JSONParseError {
            throw Self.bad("the body is not JSON: \(e)")
        } catch {
            throw EventIngress.Problem(.contentTooLarge, "a notification may be at most \(Self.maxNotificationBody) bytes")
        }
        let created = try S3Notifications.created(in: body)
        let (events, ignored) = try await S3Notifications.arrivals(created, tenant: tenant, in: pool.next())
        if !events.isEmpty { try await ingress.publish(events) }
        return Self.json(.accepted, ["accepted": .array(events.map { .object(["id": .string($0.id), "dataset": .string($0.subject ?? ""),
                                                                                "url": $0.jsonData?["url"] ?? .null]) }),
                                     "ignored": .array(ignored.map { .object(["object": .string($0.object), "reason": .string($0.reason)]) })])
    }
}

/// Bucket notifications that a store (MinIO's Kafka target, say) writes to a Kafka topic the
/// operator names (`ALMANAC_S3_NOTIFICATIONS_TOPIC`): each record is read as a notification,
/// its new objects matched against every tenant's rules (the rule decides the tenant), the
/// arrivals published and archived through the ingress, and only then the record committed.
/// A record that is not a notification is logged and skipped; it stops nothing.
public struct S3NotificationRelay: IngressRoutes {
    let topic: String
    let kafka: KafkaConfiguration
    let databaseURL: String
    let logger = Logger(label: "almanac.s3-relay")

    /// A relay from `topic`.
    public init(topic: String, kafka: KafkaConfiguration, databaseURL: String) {
        (self.topic, self.kafka, self.databaseURL) = (topic, kafka, databaseURL)
    }

    /// The topic `ALMANAC_S3_NOTIFICATIONS_TOPIC` names, if any (`up` creates it with the others).
    public static func configuredTopics(_ env: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        guard let topic = env["ALMANAC_S3_NOTIFICATIONS_TOPIC"]?.trimmingCharacters(in: .whitespaces), !topic.isEmpty else { return [] }
        return [topic]
    }

    /// No routes of its own.
    public func add(to router: Router<BasicRequestContext>, ingress: EventIngress) {}

    /// The relay loop.
    public func background(ingress: EventIngress) -> (@Sendable () async -> Void)? {
        { await self.run(ingress) }
    }

    func run(_ ingress: EventIngress) async {
        while !Task.isCancelled {
            do {
                let db = try await PostgresConnection.connect(url: databaseURL, applicationName: "almanac-s3-relay")
                defer { Task { await db.close() } }
                let consumer = try KafkaConsumer(configuration: kafka, groupID: "almanac-s3-notifications", topics: [topic])
                defer { Task { await consumer.close() } }
                logger.info("relaying bucket notifications", metadata: ["topic": "\(topic)"])
                while !Task.isCancelled {
                    guard let record = try await consumer.poll(timeout: .milliseconds(200)) else { continue }
                    try await relay(record, db: db, ingress: ingress)
                    try await consumer.commit([KafkaCommitPosition(after: record)])
                }
            } catch is CancellationError {
                return
            } catch {
                // Postgres or the bus is away: the uncommitted record is read again.
                logger.error("bucket notification relay failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    func relay(_ record: KafkaRecord, db: PostgresConnection, ingress: EventIngress) async throws {
        let created: [S3Notifications.Created]
        do {
            guard let value = record.value, value.count <= ForecastAPI.maxNotificationBody else {
                throw PipelineError("the record is empty or over \(ForecastAPI.maxNotificationBody) bytes")
            }
            created = try S3Notifications.created(in: try JSONValue(parsing: value))
        } catch {
            logger.warning("skipped a record that is not a bucket notification",
                           metadata: ["partition": "\(record.partition)", "offset": "\(record.offset)", "error": "\(error)"])
            return
        }
        let (events, ignored) = try await S3Notifications.arrivals(created, tenant: nil, in: db)
        for i in ignored { logger.notice("bucket notification names an object no rule covers", metadata: ["object": "\(i.object)"]) }
        if !events.isEmpty { try await ingress.publish(events) }
    }
}
