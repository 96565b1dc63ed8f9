import AlmanacPipeline
import AlmanacControlPlane
import AlmanacCore
import AlmanacPostgres
import AlmanacFunctions
import Foundation
import Hummingbird

/// `/v1` reads of what the pipeline made and what went wrong: a dataset's predictors (with
/// their backtest metrics and each item's chosen model), its accuracy history (the monitor's
/// scores against the retrain bound, breaches marked), and the tenant's dead letters (list,
/// show, redrive).
extension ForecastAPI {
    func addInsightRoutes(to router: Router<BasicRequestContext>, ingress: EventIngress) {
        router.get("/v1/datasets/:name/predictors") { request, context in
            await serve(request, ingress, needs: .read) { c in try await predictors(request, dataset: try Self.datasetName(context), tenant: c.tenant) }
        }
        router.get("/v1/datasets/:name/accuracy") { request, context in
            await serve(request, ingress, needs: .read) { c in try await accuracy(dataset: try Self.datasetName(context), tenant: c.tenant) }
        }
        router.get("/v1/deadletters") { request, _ in
            await serve(request, ingress, needs: .read) { c in try await deadLetters(request, tenant: c.tenant) }
        }
        router.get("/v1/deadletters/:id") { request, context in
            await serve(request, ingress, needs: .read) { c in try await deadLetter(context.parameters.get("id") ?? "", tenant: c.tenant) }
        }
        router.post("/v1/deadletters/:id/redrive") { request, context in
            await serve(request, ingress, needs: .admin) { c in
                try await redrive(context.parameters.get("id") ?? "", tenant: c.tenant, ingress: ingress)
            }
        }
    }

    /// The dataset's predictors, newest first; each with what started its training (the event,
    /// and its type: a retrain after a breach is started by `almanac.accuracy.breached`) and
    /// its items' chosen models (at most `limit` predictors).
    func predictors(_ request: Request, dataset name: String, tenant: String) async throws -> Response {
        let page = try Page(request, defaultLimit: 10)
        let db = pool.next()
        try await requireDataset(name, tenant: tenant, db: db)
        let out: [JSONValue] = try await Predictor.summaries(tenant: tenant, dataset: name, limit: page.limit, in: db).map { p in
            .object([
                "id": .string(p.id), "kind": .string(p.kind), "dataset_version": .number(Double(p.datasetVersion)),
                "metrics": p.metrics, "created_at": .string(RFC3339.format(p.createdAt)),
                "trigger_event": .string(p.triggerEvent), "trigger_type": p.triggerType.map(JSONValue.string) ?? .null,
                "items": .array(p.items.map { i in
                    .object(["item_id": .string(i.item), "model": .string(i.model), "combination": .string(i.combination),
                             "members": .array(i.members.map(JSONValue.string))])
                }),
            ])
        }
        return Self.json(.ok, ["items": .array(out)])
    }

    /// The monitor's measurements of the dataset's forecasts, oldest first.
    func accuracy(dataset name: String, tenant: String) async throws -> Response {
        let db = pool.next()
        try await requireDataset(name, tenant: tenant, db: db)
        func number(_ v: Double?) -> JSONValue { v.map(JSONValue.number) ?? .null }
        return Self.json(.ok, ["items": .array(try await ForecastStore.measurements(tenant: tenant, dataset: name, in: db).map { m in
            .object(["forecast_id": .string(m.forecastID), "dataset_version": .number(Double(m.datasetVersion)),
                     "points": .number(Double(m.points)), "wape": number(m.wape), "mase": number(m.mase), "wql": number(m.wql),
                     "bound": number(m.bound), "breached": .bool(m.breached), "created_at": .string(RFC3339.format(m.createdAt))])
        })])
    }

    /// The tenant's dead letters (of events that decoded: a record that did not cannot be
    /// told to be the tenant's), newest first; open ones unless `status` says otherwise.
    func deadLetters(_ request: Request, tenant: String) async throws -> Response {
        let page = try Page(request, defaultLimit: 50)
        let status = request.uri.queryParameters["status"].map(String.init) ?? "open"
        guard ["open", "redriven", "discarded", "all"].contains(status) else {
            throw Self.bad("status must be open, redriven, discarded or all, got \(EventLimits.quoted(status))")
        }
        let before = page.after.flatMap(Int64.init)
        if page.after != nil && before == nil { throw Self.bad("cursor is not one this API returned") }
        let rows = try await DeadLetterStore.list(tenant: tenant, status: status, before: before, limit: page.limit + 1, in: pool.next())
        let shown = Array(rows.prefix(page.limit))
        let next = rows.count > page.limit ? shown.last.map { Page.cursor(String($0.id)) } : nil
        return Self.json(.ok, ["items": .array(shown.map(Self.letter)), "next_cursor": next.map(JSONValue.string) ?? .null])
    }

    func deadLetter(_ id: String, tenant: String) async throws -> Response {
        guard let n = Int64(id), n > 0 else { throw Self.noLetter(id, tenant) }
        guard let letter = try await DeadLetterStore.find(tenant: tenant, id: n, in: pool.next()) else { throw Self.noLetter(id, tenant) }
        var out = Self.letter(letter).objectValue ?? [:]
        if let value = letter.recordValue {
            out["record"] = String(data: value, encoding: .utf8).map(JSONValue.string) ?? .string(value.base64EncodedString())
            out["record_encoding"] = .string(String(data: value, encoding: .utf8) == nil ? "base64" : "utf-8")
        }
        return Self.json(.ok, .object(out))
    }

    func redrive(_ id: String, tenant: String, ingress: EventIngress) async throws -> Response {
        guard let n = Int64(id), n > 0 else { throw Self.noLetter(id, tenant) }
        let db = pool.next()
        guard try await DeadLetterStore.find(tenant: tenant, id: n, in: db)?.status == "open" else { throw Self.noLetter(id, tenant, open: true) }
        let done = try await DeadLetterStore.redrive(ids: [n], db: db, producer: ingress.producer)
        return Self.json(.accepted, ["id": .number(Double(n)), "status": "redriven", "topic": done.first.map { .string($0.topic) } ?? .null])
    }

    static func letter(_ l: DeadLetterStore.Row) -> JSONValue {
        .object(["id": .number(Double(l.id)), "stage": .string(l.stage), "event_id": .string(l.eventID),
                 "event_type": l.eventType.map(JSONValue.string) ?? .null, "error_code": .string(l.errorCode), "error": .string(l.error),
                 "attempts": .number(Double(l.attempts)), "status": .string(l.status), "created_at": .string(RFC3339.format(l.createdAt))])
    }

    static func noLetter(_ id: String, _ tenant: String, open: Bool = false) -> EventIngress.Problem {
        EventIngress.Problem(.notFound, "tenant \(tenant) has no \(open ? "open " : "")dead letter \(EventLimits.quoted(id))")
    }
}
