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
        let rows = try await db.query("""
            SELECT p.id, p.kind, p.dataset_version, p.items, p.metrics::text AS metrics, p.created_at, p.trigger_event,
                   (SELECT a.type FROM event_archive a WHERE a.id = p.trigger_event AND a.tenant = p.tenant LIMIT 1) AS trigger_type
            FROM predictors p
            WHERE p.tenant = $1 AND p.dataset = $2 ORDER BY p.created_at DESC, p.id DESC LIMIT $3
            """, [tenant, name, page.limit])
        var out: [JSONValue] = []
        for r in rows {
            let id: String = try r.decode("id")
            let items = try await db.query("""
                SELECT item_id, method, combination, array_to_string(members, ',') AS members FROM predictor_items
                WHERE predictor_id = $1 ORDER BY item_id LIMIT 10000
                """, [id])
            out.append(.object([
                "id": .string(id), "kind": .string(try r.decode("kind")), "dataset_version": .number(Double(try r.decode("dataset_version", as: Int.self))),
                "metrics": (try? JSONValue(parsing: r.text("metrics") ?? "{}")) ?? .object([:]),
                "created_at": .string(RFC3339.format(try r.decode("created_at"))),
                "trigger_event": .string(try r.decode("trigger_event")),
                "trigger_type": r.text("trigger_type").map(JSONValue.string) ?? .null,
                "items": .array(try items.map { i in
                    .object(["item_id": .string(try i.decode("item_id")), "model": .string(try i.decode("method")),
                             "combination": .string(try i.decode("combination")),
                             "members": .array((i.text("members") ?? "").split(separator: ",").map { .string(String($0)) })])
                }),
            ]))
        }
        return Self.json(.ok, ["items": .array(out)])
    }

    /// The monitor's measurements of the dataset's forecasts, oldest first.
    func accuracy(dataset name: String, tenant: String) async throws -> Response {
        let db = pool.next()
        try await requireDataset(name, tenant: tenant, db: db)
        let rows = try await db.query("""
            SELECT forecast_id, dataset_version, points, wape, mase, wql, bound, breached, created_at FROM accuracy_measurements
            WHERE tenant = $1 AND dataset = $2 ORDER BY created_at, id LIMIT 10000
            """, [tenant, name])
        func number(_ r: PostgresRow, _ c: String) throws -> JSONValue { (try r.decodeIfPresent(c, as: Double.self)).map(JSONValue.number) ?? .null }
        return Self.json(.ok, ["items": .array(try rows.map { r in
            .object(["forecast_id": .string(try r.decode("forecast_id")), "dataset_version": .number(Double(try r.decode("dataset_version", as: Int.self))),
                     "points": .number(Double(try r.decode("points", as: Int.self))), "wape": try number(r, "wape"), "mase": try number(r, "mase"),
                     "wql": try number(r, "wql"), "bound": try number(r, "bound"), "breached": .bool(try r.decode("breached")),
                     "created_at": .string(RFC3339.format(try r.decode("created_at")))])
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
        let rows = try await pool.next().query("""
            SELECT id, stage, event_id, event_type, error_code, error, attempts, status, created_at FROM dead_letters
            WHERE tenant = $1 AND event_id IS NOT NULL AND ($2 = 'all' OR status = $2) AND ($3::bigint IS NULL OR id < $3)
            ORDER BY id DESC LIMIT $4
            """, [tenant, status, before, page.limit + 1])
        let shown = Array(rows.prefix(page.limit))
        let next = rows.count > page.limit ? (try shown.last?.decode("id", as: Int64.self)).map { Page.cursor(String($0)) } : nil
        return Self.json(.ok, ["items": .array(try shown.map { try Self.letter($0) }), "next_cursor": next.map(JSONValue.string) ?? .null])
    }

    func deadLetter(_ id: String, tenant: String) async throws -> Response {
        guard let n = Int64(id), n > 0 else { throw Self.noLetter(id, tenant) }
        let rows = try await pool.next().query("""
            SELECT id, stage, event_id, event_type, error_code, error, attempts, status, created_at, record_value FROM dead_letters
            WHERE tenant = $1 AND event_id IS NOT NULL AND id = $2
            """, [tenant, n])
        guard let r = rows.first else { throw Self.noLetter(id, tenant) }
        var out = try Self.letter(r).objectValue ?? [:]
        if let value = try r.decodeIfPresent("record_value", as: Data.self) {
            out["record"] = String(data: value, encoding: .utf8).map(JSONValue.string) ?? .string(value.base64EncodedString())
            out["record_encoding"] = .string(String(data: value, encoding: .utf8) == nil ? "base64" : "utf-8")
        }
        return Self.json(.ok, .object(out))
    }

    func redrive(_ id: String, tenant: String, ingress: EventIngress) async throws -> Response {
        guard let n = Int64(id), n > 0 else { throw Self.noLetter(id, tenant) }
        let db = pool.next()
        let open = try await db.query("SELECT 1 FROM dead_letters WHERE tenant = $1 AND event_id IS NOT NULL AND id = $2 AND status = 'open'", [tenant, n])
        guard !open.isEmpty else { throw Self.noLetter(id, tenant, open: true) }
        let done = try await DeadLetterStore.redrive(ids: [n], db: db, producer: ingress.producer)
        return Self.json(.accepted, ["id": .number(Double(n)), "status": "redriven", "topic": done.first.map { .string($0.topic) } ?? .null])
    }

    static func letter(_ r: PostgresRow) throws -> JSONValue {
        .object(["id": .number(Double(try r.decode("id", as: Int64.self))), "stage": .string(try r.decode("stage")),
                 "event_id": .string(try r.decode("event_id")), "event_type": r.text("event_type").map(JSONValue.string) ?? .null,
                 "error_code": .string(try r.decode("error_code")), "error": .string(try r.decode("error")),
                 "attempts": .number(Double(try r.decode("attempts", as: Int.self))), "status": .string(try r.decode("status")),
                 "created_at": .string(RFC3339.format(try r.decode("created_at")))])
    }

    static func noLetter(_ id: String, _ tenant: String, open: Bool = false) -> EventIngress.Problem {
        EventIngress.Problem(.notFound, "tenant \(tenant) has no \(open ? "open " : "")dead letter \(EventLimits.quoted(id))")
    }
}
