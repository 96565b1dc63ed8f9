import AlmanacPipeline
import AlmanacControlPlane
import AlmanacCore
import AlmanacPostgres
import AlmanacFunctions
import Foundation
import HTTPTypes
import Hummingbird

/// `/v1/webhooks`: a tenant's endpoints (create, list, delete, rotate the secret) and their
/// deliveries (list, redeliver). Reads need a read token, changes an admin token.
extension ForecastAPI {
    func addWebhookRoutes(to router: Router<BasicRequestContext>, ingress: EventIngress) {
        router.post("/v1/webhooks") { request, _ in
            await serve(request, ingress, needs: .admin) { c in try await createEndpoint(request, tenant: c.tenant) }
        }
        router.get("/v1/webhooks") { request, _ in
            await serve(request, ingress, needs: .read) { c in try await listEndpoints(tenant: c.tenant) }
        }
        router.delete("/v1/webhooks/:id") { request, context in
            await serve(request, ingress, needs: .admin) { c in try await deleteEndpoint(context.parameters.get("id") ?? "", tenant: c.tenant) }
        }
        router.post("/v1/webhooks/:id/rotate-secret") { request, context in
            await serve(request, ingress, needs: .admin) { c in try await rotate(request, endpoint: context.parameters.get("id") ?? "", tenant: c.tenant) }
        }
        router.get("/v1/webhooks/:id/deliveries") { request, context in
            await serve(request, ingress, needs: .read) { c in try await deliveries(request, endpoint: context.parameters.get("id") ?? "", tenant: c.tenant) }
        }
        router.post("/v1/deliveries/:id/redeliver") { request, context in
            await serve(request, ingress, needs: .admin) { c in
                try await redeliver(context.parameters.get("id") ?? "", tenant: c.tenant, ingress: ingress)
            }
        }
    }

    func createEndpoint(_ request: Request, tenant: String) async throws -> Response {
        guard let o = try await Self.jsonBody(request).objectValue else { throw Self.bad("the body must be a JSON object with url and events") }
        if let unknown = o.keys.sorted().first(where: { !["url", "events", "allow_private"].contains($0) }) {
            throw Self.bad("unknown member \(EventLimits.quoted(unknown)); the members are allow_private, events, url")
        }
        guard let url = o["url"]?.stringValue, url.utf8.count <= 2048 else { throw Self.bad("url is required: an http(s) URL of at most 2048 bytes") }
        guard let types = o["events"]?.arrayValue?.compactMap(\.stringValue), types.count == o["events"]?.arrayValue?.count,
              (1...50).contains(types.count) else {
            throw Self.bad("events is required: 1 to 50 CloudEvent types, a trailing * matching by prefix (almanac.forecast.*)")
        }
        if let p = o["allow_private"], p.boolValue == nil { throw Self.bad("allow_private must be true or false") }
        let allowPrivate = o["allow_private"]?.boolValue ?? false
        if allowPrivate && !allowPrivateWebhooks {
            throw EventIngress.Problem(.forbidden, "this installation does not let tenants send webhooks to loopback or private addresses")
        }
        let e = try await Webhooks.add(tenant: tenant, url: url, eventTypes: types, allowPrivate: allowPrivate, in: pool.next())
        var response = Self.json(.created, ["id": .string(e.id), "url": .string(e.url), "events": .array(e.eventTypes.map(JSONValue.string)),
                                            "allow_private": .bool(e.allowPrivate), "secret": .string(e.secret)])
        response.headers[.location] = "/v1/webhooks/\(e.id)"
        return response
    }

    func listEndpoints(tenant: String) async throws -> Response {
        return Self.json(.ok, ["items": .array(try await Webhooks.listing(tenant: tenant, in: pool.next()).map { e in
            .object(["id": .string(e.id), "url": .string(e.url), "events": .array(e.eventTypes.map(JSONValue.string)),
                     "allow_private": .bool(e.allowPrivate), "disabled": e.disabledWhy.map(JSONValue.string) ?? .null,
                     "created_at": .string(RFC3339.format(e.createdAt))])
        })])
    }

    func deleteEndpoint(_ id: String, tenant: String) async throws -> Response {
        guard try await Webhooks.delete(id, tenant: tenant, in: pool.next()) else { throw Self.noEndpoint(id, tenant) }
        return Response(status: .noContent)
    }

    func rotate(_ request: Request, endpoint id: String, tenant: String) async throws -> Response {
        var overlap = 86_400.0
        if let body = request.headers[.contentLength].flatMap(Int.init), body > 0 {
            guard let o = try await Self.jsonBody(request).objectValue else { throw Self.bad("the body must be a JSON object") }
            if let unknown = o.keys.first(where: { $0 != "overlap_seconds" }) { throw Self.bad("unknown member \(EventLimits.quoted(unknown))") }
            if let v = o["overlap_seconds"] {
                guard let n = v.numberValue else { throw Self.bad("overlap_seconds must be a number") }
                overlap = n
            }
        }
        do {
            let secret = try await Webhooks.rotateSecret(endpoint: id, tenant: tenant, overlap: overlap, in: pool.next())
            return Self.json(.ok, ["id": .string(id), "secret": .string(secret), "overlap_seconds": .number(overlap)])
        } catch let e as PipelineError where e.message.contains("has no webhook endpoint") {
            throw EventIngress.Problem(.notFound, e.message)
        }
    }

    func deliveries(_ request: Request, endpoint id: String, tenant: String) async throws -> Response {
        let page = try Page(request, defaultLimit: 50)
        let db = pool.next()
        guard try await Webhooks.exists(id, tenant: tenant, in: db) else { throw Self.noEndpoint(id, tenant) }
        let before = page.after.flatMap(Int64.init)
        if page.after != nil && before == nil { throw Self.bad("cursor is not one this API returned") }
        let rows = try await WebhookDeliveries.page(endpointID: id, before: before, limit: page.limit + 1, in: db)
        let shown = Array(rows.prefix(page.limit))
        let items: [JSONValue] = shown.map { d in
            .object(["id": .number(Double(d.id)), "event_id": .string(d.eventID), "event_type": .string(d.eventType),
                     "webhook_id": .string(d.webhookID), "state": .string(d.state), "attempts": .number(Double(d.attempts)),
                     "last_status": d.lastStatus.map { .number(Double($0)) } ?? .null, "last_error": d.lastError.map(JSONValue.string) ?? .null,
                     "created_at": .string(RFC3339.format(d.createdAt)), "delivered_at": d.deliveredAt.map { .string(RFC3339.format($0)) } ?? .null])
        }
        let next = rows.count > page.limit ? shown.last.map { Page.cursor(String($0.id)) } : nil
        return Self.json(.ok, ["items": .array(items), "next_cursor": next.map(JSONValue.string) ?? .null])
    }

    /// Sends a delivery again (same `webhook-id` and body) through the notify function.
    func redeliver(_ id: String, tenant: String, ingress: EventIngress) async throws -> Response {
        guard let n = Int64(id), n > 0 else { throw Self.noDelivery(id, tenant) }
        guard try await Webhooks.requestRedelivery(n, tenant: tenant, in: pool.next()) else { throw Self.noDelivery(id, tenant) }
        var e = CloudEvent(id: UUID().uuidString.lowercased(), source: "almanac/api", type: NotifyFunction.retryType,
                           json: ["delivery_id": .number(Double(n))])
        e.tenant = tenant
        e.traceparent = CloudEvent.newTraceparent()
        try await ingress.publish([e])
        return Self.json(.accepted, ["delivery_id": .number(Double(n)), "state": "pending"])
    }

    static func bad(_ message: String) -> EventIngress.Problem { EventIngress.Problem(.badRequest, message) }
    static func noEndpoint(_ id: String, _ tenant: String) -> EventIngress.Problem {
        EventIngress.Problem(.notFound, "tenant \(tenant) has no webhook endpoint \(EventLimits.quoted(id))")
    }
    static func noDelivery(_ id: String, _ tenant: String) -> EventIngress.Problem {
        EventIngress.Problem(.notFound, "tenant \(tenant) has no delivery \(EventLimits.quoted(id))")
    }
}
