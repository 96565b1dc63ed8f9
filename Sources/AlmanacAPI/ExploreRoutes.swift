import AlmanacPipeline
import AlmanacControlPlane
import AlmanacCore
import AlmanacPostgres
import AlmanacFunctions
import Foundation
import Hummingbird

/// `/v1` reads that let a person (the console) look at a dataset and the pipeline: a
/// dataset's items (searched and paged), one item's history, its backtest windows against
/// the actuals, the tenant's data arrivals with the chain of events each started, and the
/// functions' state. All read-scoped and scoped by the tenant like the rest of `/v1`.
extension ForecastAPI {
    func addExploreRoutes(to router: Router<BasicRequestContext>, ingress: EventIngress) {
        router.get("/v1/datasets/:name/items") { request, context in
            await serve(request, ingress, needs: .read) { c in try await items(request, dataset: try Self.datasetName(context), tenant: c.tenant) }
        }
        router.get("/v1/datasets/:name/history") { request, context in
            await serve(request, ingress, needs: .read) { c in try await history(request, dataset: try Self.datasetName(context), tenant: c.tenant) }
        }
        router.get("/v1/datasets/:name/backtests") { request, context in
            await serve(request, ingress, needs: .read) { c in try await backtests(request, dataset: try Self.datasetName(context), tenant: c.tenant) }
        }
        router.get("/v1/arrivals") { request, _ in
            await serve(request, ingress, needs: .read) { c in try await arrivals(request, tenant: c.tenant) }
        }
        router.get("/v1/functions") { request, _ in
            await serve(request, ingress, needs: .read) { c in try await functionStates(tenant: c.tenant) }
        }
    }

    /// A one-item read's item and limit, checked, with a session on which the tenant's dataset was found.
    func itemRequest(_ request: Request, dataset name: String, tenant: String, limit: Int, range: ClosedRange<Int>)
        async throws -> (item: String, limit: Int, db: PostgresConnection) {
        let item = try Self.itemParameter(request)
        let limit = try Self.boundedInteger(request, "limit", default: limit, range: range)
        let db = pool.next()
        try await requireDataset(name, tenant: tenant, db: db)
        return (item, limit, db)
    }

    /// The `item` query parameter, required: 1 to 2048 bytes.
    static func itemParameter(_ request: Request) throws -> String {
        guard let item = request.uri.queryParameters["item"].map(String.init), !item.isEmpty, item.utf8.count <= 2048 else {
            throw bad("item is required: the item's id, 1 to 2048 bytes")
        }
        return item
    }

    /// The dataset's items, by id, a page at a time; `search` keeps those whose id contains it
    /// (case-insensitive). The items of the live forecast, or of the data before there is one.
    func items(_ request: Request, dataset name: String, tenant: String) async throws -> Response {
        let page = try Page(request, defaultLimit: 100)
        let search = request.uri.queryParameters["search"].map(String.init) ?? ""
        guard search.utf8.count <= 200 else { throw Self.bad("search must be at most 200 bytes") }
        let db = pool.next()
        try await requireDataset(name, tenant: tenant, db: db)
        let rows = try await db.query("""
            SELECT item_id FROM (
                SELECT DISTINCT item_id FROM latest_forecasts WHERE tenant = $1 AND dataset = $2
                UNION
                SELECT DISTINCT item_id FROM dataset_observations($1, $2)
                WHERE NOT EXISTS (SELECT 1 FROM latest_forecasts WHERE tenant = $1 AND dataset = $2)
            ) i
            WHERE item_id > $3 AND ($4 = '' OR strpos(lower(item_id), lower($4)) > 0)
            ORDER BY item_id LIMIT $5
            """, [tenant, name, page.after ?? "", search, page.limit + 1])
        let ids = try rows.prefix(page.limit).map { try $0.decode("item_id", as: String.self) }
        return Self.json(.ok, ["items": .array(ids.map { .object(["item_id": .string($0)]) }),
                               "next_cursor": rows.count > page.limit ? .string(Page.cursor(ids.last ?? "")) : .null])
    }

    /// One item's observations in time order: the last `limit` (default 1000, at most 10000).
    func history(_ request: Request, dataset name: String, tenant: String) async throws -> Response {
        let (item, limit, db) = try await itemRequest(request, dataset: name, tenant: tenant, limit: 1000, range: 1...10000)
        let points = try await ForecastStore.history(tenant: tenant, dataset: name, item: item, last: limit, in: db)
        if points.isEmpty { throw EventIngress.Problem(.notFound, "dataset \(name) has no data for item \(EventLimits.quoted(item))") }
        return Self.json(.ok, ["item_id": .string(item), "points": .array(points.map { ts, value in
            .object(["timestamp": .string(RFC3339.format(ts)), "value": .number(value)])
        })])
    }

    /// One item's backtests: for each of the dataset's latest predictors (at most `limit`,
    /// default 5), the model chosen for the item, its backtest metrics, and the held-out
    /// window's quantile forecasts beside the actuals, with the window's timestamps.
    func backtests(_ request: Request, dataset name: String, tenant: String) async throws -> Response {
        let (item, limit, db) = try await itemRequest(request, dataset: name, tenant: tenant, limit: 5, range: 1...20)
        let rows = try await db.query("""
            SELECT p.id, p.kind, p.dataset_version, p.created_at, i.method, i.metrics::text AS metrics,
                   array_to_string(h.actual, ',') AS actual, array_to_string(h.levels, ',') AS levels,
                   array_to_string(h.quantiles, ',') AS quantiles, cardinality(h.actual) AS steps,
                   p.id = (SELECT f.predictor_id FROM latest_forecasts l JOIN forecasts f ON f.id = l.forecast_id
                           WHERE l.tenant = $1 AND l.dataset = $2 LIMIT 1) AS live
            FROM predictors p
            LEFT JOIN predictor_items i ON i.predictor_id = p.id AND i.item_id = $3
            LEFT JOIN predictor_holdouts h ON h.predictor_id = p.id AND h.item_id = $3
            WHERE p.tenant = $1 AND p.dataset = $2 ORDER BY p.created_at DESC, p.id DESC LIMIT $4
            """, [tenant, name, item, limit])
        var out: [JSONValue] = []
        for r in rows {
            var entry: [String: JSONValue] = [
                "predictor_id": .string(try r.decode("id")), "kind": .string(try r.decode("kind")),
                "dataset_version": .number(Double(try r.decode("dataset_version", as: Int.self))),
                "created_at": .string(RFC3339.format(try r.decode("created_at"))), "live": .bool((try? r.decode("live", as: Bool.self)) ?? false),
                "model": r.text("method").map(JSONValue.string) ?? .null,
                "metrics": r.text("metrics").flatMap { try? JSONValue(parsing: $0) } ?? .null, "window": .null,
            ]
            if let steps = try r.decodeIfPresent("steps", as: Int.self), steps > 0 {
                let actual = Self.numbers(r.text("actual")), levels = Self.numbers(r.text("levels")), flat = Self.numbers(r.text("quantiles"))
                // The window is the item's last `steps` observations of the version the predictor was trained on.
                let stamps = try await db.query("""
                    SELECT ts FROM (SELECT ts FROM dataset_observations($1, $2, $3) WHERE version <= $4 ORDER BY ts DESC LIMIT $5) w ORDER BY ts
                    """, [tenant, name, item, try r.decode("dataset_version", as: Int.self), steps])
                if stamps.count == steps, actual.count == steps, !levels.isEmpty, flat.count == steps * levels.count {
                    entry["window"] = .object([
                        "timestamps": .array(try stamps.map { .string(RFC3339.format(try $0.decode("ts"))) }),
                        "actual": .array(actual.map(JSONValue.number)), "levels": .array(levels.map(JSONValue.number)),
                        "quantiles": .array((0..<steps).map { s in .array(flat[(s * levels.count)..<((s + 1) * levels.count)].map(JSONValue.number)) }),
                    ])
                }
            }
            out.append(.object(entry))
        }
        return Self.json(.ok, ["item_id": .string(item), "items": .array(out)])
    }

    /// The tenant's data arrivals, newest first, each with the events it caused (through the
    /// archive's causation ids: imported, trained, forecast, exported, …) and the webhook
    /// deliveries of those events: what happened when, and how long each step took.
    func arrivals(_ request: Request, tenant: String) async throws -> Response {
        let page = try Page(request, defaultLimit: 20)
        let limit = min(page.limit, 100)
        // The cursor is the last arrival's archive time (microseconds since 1970, exact) and id.
        var before: (Int64, String)?
        if let after = page.after {
            let parts = after.split(separator: "|", maxSplits: 1).map(String.init)
            guard parts.count == 2, let micros = Int64(parts[0]), micros >= 0 else { throw Self.bad("cursor is not one this API returned") }
            before = (micros, parts[1])
        }
        let db = pool.next()
        let rows = try await db.query("""
            WITH RECURSIVE arrivals AS (
                SELECT id, source, archived_at FROM event_archive
                WHERE tenant = $1 AND type = 'almanac.data.arrived'
                  AND ($2::bigint IS NULL OR (archived_at, id) < (timestamptz 'epoch' + $2 * interval '1 microsecond', $3))
                ORDER BY archived_at DESC, id DESC LIMIT $4
            ), chain AS (
                SELECT a.id AS root, e.id, e.source, e.type, e.subject, e.time, e.archived_at, 0 AS depth
                FROM arrivals a JOIN event_archive e ON e.tenant = $1 AND e.id = a.id AND e.source = a.source
                UNION ALL
                SELECT c.root, e.id, e.source, e.type, e.subject, e.time, e.archived_at, c.depth + 1
                FROM chain c JOIN event_archive e ON e.causation_id = c.id AND e.tenant = $1
                WHERE c.depth < 16
            )
            SELECT c.root, c.id, c.source, c.type, c.subject, c.archived_at, c.depth,
                   (SELECT archived_at FROM arrivals a WHERE a.id = c.root LIMIT 1) AS root_at,
                   (SELECT (extract(epoch FROM a.archived_at - timestamptz 'epoch') * 1000000)::bigint FROM arrivals a WHERE a.id = c.root LIMIT 1) AS root_micros,
                   (SELECT json_agg(json_build_object('id', d.id, 'state', d.state, 'attempts', d.attempts,
                                                      'last_status', d.last_status, 'delivered_at', d.delivered_at) ORDER BY d.id)::text
                    FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
                    WHERE w.tenant = $1 AND d.event_id = c.id) AS deliveries
            FROM chain c ORDER BY root_at DESC, c.root DESC, c.archived_at, c.depth LIMIT 5000
            """, [tenant, before?.0, before?.1, limit + 1])
        var order: [String] = []
        var chains: [String: (at: Date, micros: Int64, steps: [JSONValue])] = [:]
        for r in rows {
            let root: String = try r.decode("root")
            let at: Date = try r.decode("archived_at")
            if chains[root] == nil { order.append(root); chains[root] = (try r.decode("root_at"), try r.decode("root_micros"), []) }
            let start = chains[root]!.at
            var step: [String: JSONValue] = [
                "event_id": .string(try r.decode("id")), "type": .string(try r.decode("type")),
                "subject": r.text("subject").map(JSONValue.string) ?? .null, "archived_at": .string(RFC3339.format(at)),
                "after_ms": .number((at.timeIntervalSince(start) * 1000).rounded()),
            ]
            if let d = r.text("deliveries"), let list = try? JSONValue(parsing: d) { step["deliveries"] = list }
            chains[root]!.steps.append(.object(step))
        }
        let shown = Array(order.prefix(limit))
        let items: [JSONValue] = shown.map { root in
            let c = chains[root]!
            return .object(["event_id": .string(root), "archived_at": .string(RFC3339.format(c.at)), "steps": .array(c.steps)])
        }
        let next = order.count > limit ? shown.last.map { Page.cursor(String(chains[$0]!.micros) + "|" + $0) } : nil
        return Self.json(.ok, ["items": .array(items), "next_cursor": next.map(JSONValue.string) ?? .null])
    }

    /// The installation's functions: instances running out of their concurrency, lag on
    /// their input topic, GPU need and queue, crash-looping state, and the tenant's own
    /// recent failures (another tenant's are never shown).
    func functionStates(tenant: String) async throws -> Response {
        guard let board else { throw EventIngress.Problem(.serviceUnavailable, "this server does not watch the functions") }
        let db = pool.next()
        let states = try await board.states(db: db, tenant: tenant)
        return Self.json(.ok, ["items": .array(states), "checked_at": .string(RFC3339.format(Date()))])
    }

    /// An integer query parameter within `range`, or `default` when absent.
    static func boundedInteger(_ request: Request, _ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = request.uri.queryParameters[Substring(name)] else { return value }
        guard let n = Int(text), range.contains(n) else {
            throw bad("\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound), got \(EventLimits.quoted(String(text)))")
        }
        return n
    }

    /// The numbers of a comma-separated array text (`array_to_string`).
    static func numbers(_ text: String?) -> [Double] {
        (text ?? "").split(separator: ",").compactMap { Double($0) }
    }
}
