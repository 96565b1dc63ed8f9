import AlmanacFunctions
import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The HTTP front door: business systems POST CloudEvents to `/events` and they go on the bus.
///
/// Accepts structured (`application/cloudevents+json`), batch
/// (`application/cloudevents-batch+json`) and binary (`ce-*` headers) modes. Each request
/// carries `Authorization: Bearer <token>`; the token names the tenant, which is stamped
/// on every event (an event claiming another tenant is refused). The answer is 202 only
/// after Kafka acknowledged every event of the request and Postgres archived them. Also serves `/healthz`, `/readyz`
/// and Prometheus `/metrics`.
public struct EventIngress: Sendable {
    /// The bus producer, for routes that publish (redrives).
    public let producer: KafkaProducer
    /// The tenants and their tokens (and console sessions).
    public let tenants: TenantDirectory
    let archive: PostgresConnection
    let logger: Logger
    let metrics: MetricsRegistry
    let ready: @Sendable () async -> Bool
    let extraMetrics: @Sendable () async -> String
    let routes: [any IngressRoutes]
    let limiter: RateLimiter
    /// The largest request body accepted.
    public static let maxBody = 16 << 20

    /// Makes an ingress.
    /// - Parameters:
    ///   - ready: what `/readyz` reports.
    ///   - extraMetrics: Prometheus text appended to the registry's (e.g. figures read from Postgres).
    /// - Parameter archive: where accepted events are archived before the answer.
    ///   - routes: more routes on the same server (the `/v1` API), authenticated through `authenticate`.
    ///   - rateLimit: requests a second each tenant may make (twice that in a burst).
    public init(producer: KafkaProducer, tenants: TenantDirectory, archive: PostgresConnection, logger: Logger, metrics: MetricsRegistry = .shared,
                ready: @escaping @Sendable () async -> Bool, extraMetrics: @escaping @Sendable () async -> String = { "" },
                routes: [any IngressRoutes] = [], rateLimit: Double = RateLimiter.defaultRate) {
        self.routes = routes
        self.limiter = RateLimiter(rate: rateLimit)
        self.producer = producer
        self.archive = archive
        self.tenants = tenants
        var l = logger
        l[metadataKey: "component"] = "ingress"
        self.logger = l
        self.metrics = metrics
        self.ready = ready
        self.extraMetrics = extraMetrics
    }

    /// The HTTP application, listening on `host:port` (port 0: any free port, reported to `onRunning`).
    public func application(host: String, port: Int, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router()
        router.get("/healthz") { _, _ in Self.text(.ok, "ok\n") }
        router.get("/readyz") { _, _ in await ready() ? Self.text(.ok, "ready\n") : Self.text(.serviceUnavailable, "not ready\n") }
        router.get("/metrics") { request, _ in
            // Series that name tenants are shown only to an admin token, and only its own tenant's.
            let headers: [(String, String)] = request.headers.map { ($0.name.canonicalName, $0.value) }
            var tenant: String?
            if headers.contains(where: { $0.0 == "authorization" }) {
                switch await self.authenticate(headers, needed: .admin) {
                case .success(let c): tenant = c.tenant
                case .failure(let p): return p.response
                }
            }
            let body = metrics.render(tenant: tenant) + (await extraMetrics())
            return Self.text(.ok, body, contentType: "text/plain; version=0.0.4")
        }
        router.post("/events") { request, _ in await self.accept(request) }
        router.post("/v1/events") { request, _ in await self.accept(request) }
        for r in routes { r.add(to: router, ingress: self) }
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "almanac"),
                           onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
                           logger: logger)
    }

    /// Who the request's bearer token speaks for, or the answer refusing it (401 without a
    /// working token, 403 when its scope does not allow `needed`, 429 with `Retry-After` past
    /// the tenant's request rate, 503 when Postgres cannot say).
    ///
    /// A request without an `Authorization` header may instead carry a console session's
    /// cookie, together with its `X-Almanac-CSRF` value (`ConsoleSession`).
    public func authenticate(_ headers: [(String, String)], needed: TokenScope) async -> Result<Credential, Problem> {
        if !headers.contains(where: { $0.0 == "authorization" }), let secret = ConsoleSession.secret(in: headers) {
            return await authenticate(session: secret, headers, needed: needed)
        }
        let token: String
        switch Self.bearerToken(headers) {
        case .success(let t): token = t
        case .failure(let p): return .failure(p)
        }
        do {
            return admit(try await tenants.credential(forToken: token), needed: needed)
        } catch {
            logger.error("tenant lookup failed", metadata: ["error": "\(error)"])
            return .failure(Problem(.serviceUnavailable, "tenant directory unavailable; retry later"))
        }
    }

    /// Who a console session's cookie speaks for: the request must repeat the session's CSRF
    /// value (403 otherwise), and the session and its token must still work (401 otherwise).
    func authenticate(session secret: String, _ headers: [(String, String)], needed: TokenScope) async -> Result<Credential, Problem> {
        guard ConsoleSession.csrfMatches(headers, secret: secret) else {
            return .failure(Problem(.forbidden, "a request made with the console's session cookie must carry its X-Almanac-CSRF header "
                                        + "(from GET /console/session); other clients send Authorization: Bearer <token>"))
        }
        do {
            guard let found = try await tenants.credential(forSession: secret) else {
                return .failure(Problem(.unauthorized, "the console session ended or expired, or its token was revoked; sign in again"))
            }
            return admit(found, needed: needed)
        } catch {
            logger.error("session lookup failed", metadata: ["error": "\(error)"])
            return .failure(Problem(.serviceUnavailable, "tenant directory unavailable; retry later"))
        }
    }

    /// The bearer token of a request's headers, or the 401 refusing a request without one.
    public static func bearerToken(_ headers: [(String, String)]) -> Result<String, Problem> {
        bearerToken(authorization: headers.first { $0.0 == "authorization" }?.1)
    }

    /// The bearer token of an `Authorization` header's value, or the problem to answer.
    public static func bearerToken(authorization: String?) -> Result<String, Problem> {
        let auth = authorization ?? ""
        guard auth.lowercased().hasPrefix("bearer "), case let token = String(auth.dropFirst(7)).trimmingCharacters(in: .whitespaces), !token.isEmpty else {
            return .failure(Problem(.unauthorized, "missing bearer token: send Authorization: Bearer <token> (ALMANAC_TOKEN in .almanac/endpoints.env)"))
        }
        return .success(token)
    }

    /// The rest of `authenticate` for a credential already looked up (nil: the token does not
    /// work), as a route that checks the token in its own statement has it: the scope, then
    /// the tenant's request rate.
    public func admit(_ found: Credential?, needed: TokenScope) -> Result<Credential, Problem> {
        guard let credential = found else { return .failure(Problem(.unauthorized, "unknown, revoked or expired token")) }
        guard credential.scope.allows(needed) else {
            return .failure(Problem(.forbidden, "token \(credential.tokenID) has scope \(credential.scope.rawValue); this needs \(needed.rawValue) or admin"))
        }
        if let wait = limiter.take(credential.tenant) {
            let seconds = max(1, Int(wait.rounded(.up)))
            metrics.increment("almanac_ingress_rate_limited_total", help: "Requests refused for a tenant's request rate")
            return .failure(Problem(.tooManyRequests, "tenant \(credential.tenant) is over its rate of \(limiter.rate) requests a second; retry after \(seconds) s",
                                    headers: [("Retry-After", String(seconds))]))
        }
        return .success(credential)
    }

    /// Publishes the CloudEvents of a request (`POST /events`, `POST /v1/events`).
    public func accept(_ incoming: Request) async -> Response {
        var request = incoming
        let headers: [(String, String)] = request.headers.map { ($0.name.canonicalName, $0.value) }
        let tenant: String
        switch await authenticate(headers, needed: .publish) {
        case .success(let c): tenant = c.tenant
        case .failure(let p): return p.response
        }
        let body: Data
        do { body = Data((try await request.collectBody(upTo: Self.maxBody)).readableBytesView) } catch {
            return Self.problem(.contentTooLarge, "request body over \(Self.maxBody) bytes")
        }
        var events: [CloudEvent]
        do {
            events = try CloudEvent.fromHTTP(headers: headers, body: body)
            for (i, e) in events.enumerated() { try Self.admit(e, index: events.count > 1 ? i : nil) }
        } catch let error as EventError {
            metrics.increment("almanac_ingress_rejected_total", labels: ["reason": error.code.description], help: "Requests refused by the ingress")
            return Self.problem(error.code == .forbiddenType ? .forbidden : .badRequest, error.message,
                                extra: ["code": .string(error.code.description), "attribute": error.attribute.map(JSONValue.string) ?? .null,
                                        "event_index": error.index.map { .number(Double($0)) } ?? .null])
        } catch {
            return Self.problem(.badRequest, "\(error)")
        }
        for i in events.indices {
            if let claimed = events[i].extensions["tenant"], claimed != tenant {
                return Self.problem(.forbidden, "event \(EventLimits.quoted(events[i].id)) claims tenant \(EventLimits.quoted(claimed)) but the token belongs to '\(tenant)'",
                                    extra: ["attribute": "tenant", "event_index": events.count > 1 ? .number(Double(i)) : .null])
            }
            events[i].tenant = tenant
            if events[i].traceparent == nil, let tp = headers.first(where: { $0.0 == "traceparent" })?.1 { events[i].traceparent = tp }
            if events[i].traceparent == nil { events[i].traceparent = CloudEvent.newTraceparent() }
        }
        do { try await publish(events) } catch let p as Problem { return p.response } catch {
            return Self.problem(.serviceUnavailable, "\(error)")
        }
        metrics.increment("almanac_ingress_events_total", by: Double(events.count), help: "Events accepted over HTTP")
        metrics.increment("almanac_ingress_tenant_events_total", by: Double(events.count), labels: ["tenant": tenant],
                          help: "Events accepted over HTTP, per tenant (shown to the tenant's admin tokens only)")
        logger.info("accepted events", metadata: ["count": "\(events.count)", "tenant": "\(tenant)", "ids": "\(events.map(\.id).joined(separator: ","))"])
        let answer: JSONValue = ["accepted": .array(events.map { .string($0.id) })]
        return Self.text(.accepted, answer.serialized() + "\n", contentType: "application/json")
    }

    /// Puts admitted events on the bus and archives them; only then may a request be answered
    /// 202 (should the broker lose them before the router has them, the control plane routes
    /// them again from Postgres).
    /// - Throws: `Problem` (503) saying which step failed.
    public func publish(_ events: [CloudEvent]) async throws {
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for e in events {
                    let record = e.kafkaBinary()
                    group.addTask {
                        try await producer.send(topic: Outbox.busTopic, key: record.key, value: record.value, headers: record.headers)
                    }
                }
                try await group.waitForAll()
            }
        } catch {
            logger.error("publish failed", metadata: ["error": "\(error)"])
            throw Problem(.serviceUnavailable, "the bus did not acknowledge the event(s): \(error); retry later")
        }
        do { try await EventArchive.store(events, in: archive) } catch {
            logger.error("archiving accepted events failed", metadata: ["error": "\(error)"])
            throw Problem(.serviceUnavailable, "the events are on the bus but could not be recorded in Postgres: \(error); "
                              + "send them again (their ids make a second copy harmless)")
        }
    }

    /// A response with a text body.
    public static func text(_ status: HTTPResponse.Status, _ body: String, contentType: String = "text/plain; charset=utf-8") -> Response {
        Response(status: status, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// A refusal: its status, what it says, and headers to send with it (`Retry-After`).
    public struct Problem: Error, Sendable {
        /// The HTTP status.
        public var status: HTTPResponse.Status
        /// What was wrong and where.
        public var detail: String
        /// Extra headers.
        public var headers: [(String, String)] = []
        /// Makes a problem.
        public init(_ status: HTTPResponse.Status, _ detail: String, headers: [(String, String)] = []) {
            (self.status, self.detail, self.headers) = (status, detail, headers)
        }
        /// The problem document answering it.
        public var response: Response {
            var r = EventIngress.problem(status, detail)
            for (k, v) in headers { if let name = HTTPField.Name(k) { r.headers[name] = v } }
            return r
        }
    }

    /// An RFC 9457 problem document: `title` (the status's reason), `status`, `detail` (what
    /// was wrong and where), the same text as `error`, and members such as `attribute` and
    /// `event_index` (the event's place in a batch) when they are known.
    public static func problem(_ status: HTTPResponse.Status, _ message: String, extra: [String: JSONValue] = [:]) -> Response {
        var body: [String: JSONValue] = ["type": "about:blank", "title": .string(status.reasonPhrase), "status": .number(Double(status.code)),
                                         "detail": .string(message), "error": .string(message)]
        for (k, v) in extra where v != .null { body[k] = v }
        return text(status, JSONValue.object(body).serialized() + "\n", contentType: "application/problem+json")
    }

    /// Event types a tenant may publish in the `almanac.` namespace; every other `almanac.*`
    /// type is the runtime's own and comes only from its functions, over the outbox.
    public static let publicInternalTypes: Set<String> = ["almanac.data.arrived"]

    /// What the door adds to the CloudEvents checks: data declared JSON must be JSON, and
    /// internal `almanac.*` types are not for tenants.
    static func admit(_ event: CloudEvent, index: Int?) throws {
        let prefix = index.map { "batch event [\($0)]: " } ?? ""
        if event.type.hasPrefix("almanac."), !publicInternalTypes.contains(event.type) {
            throw EventError(.forbiddenType, prefix + "type \(EventLimits.quoted(event.type)) is reserved for Almanac's own functions; "
                                 + "tenants may publish almanac.data.arrived and types outside the almanac. namespace", attribute: "type", index: index)
        }
        if let data = event.data, !data.isEmpty, event.hasJSONData {
            do { _ = try JSONValue(parsing: data) } catch {
                throw EventError(.invalidEvent, prefix + "data is declared JSON (datacontenttype \(EventLimits.quoted(event.datacontenttype ?? "application/json"))) but is not: \(error)",
                                 attribute: "data", index: index)
            }
        }
    }
}
