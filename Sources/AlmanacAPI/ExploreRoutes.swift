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
        let found = try await DatasetSeries.itemIDs(tenant: tenant, dataset: name, after: page.after ?? "", containing: search,
                                                    limit: page.limit + 1, in: db)
        let ids = Array(found.prefix(page.limit))
        return Self.json(.ok, ["items": .array(ids.map { .object(["item_id": .string($0)]) }),
                               "next_cursor": found.count > page.limit ? .string(Page.cursor(ids.last ?? "")) : .null])
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
        var out: [JSONValue] = []
        for b in try await Predictor.backtests(tenant: tenant, dataset: name, item: item, limit: limit, in: db) {
            var entry: [String: JSONValue] = [
                "predictor_id": .string(b.predictorID), "kind": .string(b.kind), "dataset_version": .number(Double(b.datasetVersion)),
                "created_at": .string(RFC3339.format(b.createdAt)), "live": .bool(b.live),
                "model": b.model.map(JSONValue.string) ?? .null, "metrics": b.metrics ?? .null, "window": .null,
            ]
            let steps = b.actual.count
            if steps > 0 {
                // The window is the item's last `steps` observations of the version the predictor was trained on.
                let stamps = try await DatasetSeries.lastTimestamps(tenant: tenant, dataset: name, item: item, upToVersion: b.datasetVersion,
                                                                    count: steps, in: db)
                let levels = b.levels, flat = b.quantiles
                if stamps.count == steps, !levels.isEmpty, flat.count == steps * levels.count {
                    entry["window"] = .object([
                        "timestamps": .array(stamps.map { .string(RFC3339.format($0)) }),
                        "actual": .array(b.actual.map(JSONValue.number)), "levels": .array(levels.map(JSONValue.number)),
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
        var order: [String] = []
        var chains: [String: (at: Date, micros: Int64, steps: [JSONValue])] = [:]
        for step in try await EventArchive.arrivalChains(tenant: tenant, before: before, limit: limit + 1, in: pool.next()) {
            if chains[step.root] == nil { order.append(step.root); chains[step.root] = (step.rootAt, step.rootMicros, []) }
            let start = chains[step.root]!.at
            var entry: [String: JSONValue] = [
                "event_id": .string(step.id), "type": .string(step.type), "subject": step.subject.map(JSONValue.string) ?? .null,
                "archived_at": .string(RFC3339.format(step.archivedAt)), "after_ms": .number((step.archivedAt.timeIntervalSince(start) * 1000).rounded()),
            ]
            if let d = step.deliveries { entry["deliveries"] = d }
            chains[step.root]!.steps.append(.object(entry))
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
}
