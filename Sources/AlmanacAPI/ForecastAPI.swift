import AlmanacPipeline
import AlmanacControlPlane
import AlmanacCore
import AlmanacForecast
import AlmanacPostgres
import AlmanacFunctions
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The `/v1` API on the ingress's server: a tenant's datasets and forecasts over HTTP,
/// bearer-authenticated with scopes (read for `GET`, admin for changes), errors as RFC 9457
/// problem documents, lists paged with an opaque cursor. Every query is scoped by the
/// token's tenant: another tenant's dataset is simply not found.
public struct ForecastAPI: IngressRoutes {
    let pool: ConnectionPool
    /// Rendered one-item answers of live forecasts, by forecast id.
    let answers = ForecastAnswers()
    /// Where uploads are written (each tenant's part of the drop folder), if this server takes them.
    let drop: DropFolder?
    /// Whether tenants may add webhook endpoints on loopback or private addresses
    /// (`ALMANAC_WEBHOOKS_ALLOW_PRIVATE=1`; off by default: no webhook into the internal network).
    let allowPrivateWebhooks: Bool
    /// The functions' state for `GET /v1/functions`, where this server watches them.
    var board: FunctionBoard?
    let ingressLog = Logger(label: "almanac.api")
    /// The largest JSON request body.
    public static let maxJSONBody = 64 << 10
    /// The most items or datasets a page holds.
    public static let maxPage = 1000

    /// Connects `connections` sessions to the database (queries go round-robin over them).
    /// - Parameter dropFolder: the drop folder uploads are written into (nil: no uploads).
    /// - Parameter allowPrivateWebhooks: whether tenants may point endpoints at private addresses.
    public static func connect(url: String, connections: Int = 4, dropFolder: String? = nil,
                               allowPrivateWebhooks: Bool = ProcessInfo.processInfo.environment["ALMANAC_WEBHOOKS_ALLOW_PRIVATE"] == "1")
        async throws -> ForecastAPI {
        ForecastAPI(pool: try await ConnectionPool.connect(url: url, size: connections, applicationName: "almanac-api"),
                    drop: try dropFolder.map { try DropFolder(path: $0) }, allowPrivateWebhooks: allowPrivateWebhooks)
    }

    /// The same API, also answering `GET /v1/functions` from `board`.
    public func watching(_ board: FunctionBoard) -> ForecastAPI {
        var api = self
        api.board = board
        return api
    }

    /// Closes the sessions.
    public func close() async { await pool.close() }

    /// Adds the routes.
    public func add(to router: Router<BasicRequestContext>, ingress: EventIngress) {
        router.get("/v1/openapi.json") { _, _ in EventIngress.text(.ok, OpenAPIDocument.json, contentType: "application/json") }
        router.get("/v1/datasets") { request, _ in
            await serve(request, ingress, needs: .read) { c in try await listDatasets(request, tenant: c.tenant) }
        }
        router.post("/v1/datasets") { request, _ in
            await serve(request, ingress, needs: .admin) { c in try await createDataset(request, tenant: c.tenant) }
        }
        router.get("/v1/datasets/:name") { request, context in
            await serve(request, ingress, needs: .read) { c in try await showDataset(try Self.datasetName(context), tenant: c.tenant) }
        }
        router.delete("/v1/datasets/:name") { request, context in
            await serve(request, ingress, needs: .admin) { c in try await deleteDataset(try Self.datasetName(context), tenant: c.tenant) }
        }
        router.post("/v1/datasets/:name/data") { request, context in
            await serve(request, ingress, needs: .publish) { c in
                try await upload(request, dataset: try Self.datasetName(context), tenant: c.tenant, ingress: ingress)
            }
        }
        router.get("/v1/datasets/:name/imports/:id") { request, context in
            await serve(request, ingress, needs: .read) { c in
                try await importStatus(dataset: try Self.datasetName(context), id: context.parameters.get("id") ?? "", tenant: c.tenant)
            }
        }
        addWebhookRoutes(to: router, ingress: ingress)
        addInsightRoutes(to: router, ingress: ingress)
        addExploreRoutes(to: router, ingress: ingress)
        addS3Routes(to: router, ingress: ingress)
        router.get("/v1/datasets/:name/forecast") { request, context in
            await answer(request) {
                let name = try Self.datasetName(context)
                if let fast = try await oneItemForecast(request, dataset: name, ingress: ingress) { return fast }
                return await serve(request, ingress, needs: .read) { c in try await forecast(request, dataset: name, tenant: c.tenant) }
            }
        }
    }

    /// Authenticates, runs `body`, and turns what it throws into a problem document.
    func serve(_ request: Request, _ ingress: EventIngress, needs scope: TokenScope,
               _ body: (Credential) async throws -> Response) async -> Response {
        let headers: [(String, String)] = request.headers.map { ($0.name.canonicalName, $0.value) }
        switch await ingress.authenticate(headers, needed: scope) {
        case .failure(let p): return p.response
        case .success(let c): return await answer(request) { try await body(c) }
        }
    }

    /// Runs `body` and turns what it throws into a problem document.
    func answer(_ request: Request, _ body: () async throws -> Response) async -> Response {
        do { return try await body() } catch let p as EventIngress.Problem {
            return p.response
        } catch let e as PipelineError {
            return EventIngress.Problem(.badRequest, e.message).response
        } catch let e as PostgresError where e.code == .connectionLost || e.code == .connectionFailed {
            return EventIngress.Problem(.serviceUnavailable, "the database is unavailable; retry later", headers: [("Retry-After", "1")]).response
        } catch {
            ingressLog.error("API request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return EventIngress.Problem(.internalServerError, "the request failed inside Almanac; the server log has the details").response
        }
    }

    static func datasetName(_ context: BasicRequestContext) throws -> String {
        let name = context.parameters.get("name") ?? ""
        if let problem = Slug.problem(name, what: "dataset", maxLength: Slug.maxDatasetLength) { throw EventIngress.Problem(.notFound, problem) }
        return name
    }

    static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        EventIngress.text(status, value.serialized() + "\n", contentType: "application/json")
    }

    // MARK: datasets

    func listDatasets(_ request: Request, tenant: String) async throws -> Response {
        let page = try Page(request)
        let db = pool.next()
        // One statement for the page, whatever its size.
        let rows = try await DatasetStore.page(tenant: tenant, after: page.after, limit: page.limit + 1, in: db)
        let shown = Array(rows.prefix(page.limit))
        let items = shown.map { Self.summary($0.0, $0.1) }
        let last = shown.last?.0.name
        return Self.json(.ok, ["items": .array(items), "next_cursor": rows.count > page.limit ? .string(Page.cursor(last ?? "")) : .null])
    }

    /// The request's JSON body, at most `maxJSONBody` bytes.
    static func jsonBody(_ request: Request) async throws -> JSONValue {
        var r = request
        do {
            let bytes = try await r.collectBody(upTo: Self.maxJSONBody)
            return try JSONValue(parsing: Data(bytes.readableBytesView))
        } catch let e as JSONParseError {
            throw EventIngress.Problem(.badRequest, "the body is not JSON: \(e)")
        } catch {
            throw EventIngress.Problem(.contentTooLarge, "the body is over \(Self.maxJSONBody) bytes")
        }
    }

    func createDataset(_ request: Request, tenant: String) async throws -> Response {
        let d = try DatasetRequest.dataset(from: try await Self.jsonBody(request), tenant: tenant)
        let db = pool.next()
        if try await DatasetStore.find(tenant: tenant, name: d.name, in: db) != nil {
            throw EventIngress.Problem(.conflict, "dataset \(d.name) already exists for tenant \(tenant)")
        }
        try await DatasetStore.create(d, in: db)
        guard let made = try await DatasetStore.find(tenant: tenant, name: d.name, in: db) else {
            throw EventIngress.Problem(.conflict, "dataset \(d.name) was deleted while it was made")
        }
        var response = Self.json(.created, try await summary(made, db: db))
        response.headers[.location] = "/v1/datasets/\(d.name)"
        return response
    }

    func showDataset(_ name: String, tenant: String) async throws -> Response {
        let db = pool.next()
        guard let d = try await DatasetStore.find(tenant: tenant, name: name, in: db) else { throw Self.noDataset(name, tenant) }
        var out = try await summary(d, db: db).objectValue ?? [:]
        out["versions"] = .array(try await DatasetStore.versions(tenant: tenant, name: name, limit: 20, in: db).map { v in
            .object(["version": .number(Double(v.version)), "import_id": .string(v.importID), "source": .string(v.source),
                     "rows_read": .number(Double(v.rowsRead)), "rows_rejected": .number(Double(v.rowsRejected)),
                     "rows_changed": .number(Double(v.rowsChanged)), "items": .number(Double(v.items)),
                     "created_at": .string(RFC3339.format(v.createdAt))])
        })
        out["imports"] = .array(try await DatasetStore.importReports(tenant: tenant, name: name, limit: 20, in: db).map { r in
            .object(["import_id": .string(r.importID), "source": .string(r.source), "accepted": .bool(r.accepted), "report": r.report,
                     "created_at": .string(RFC3339.format(r.createdAt))])
        })
        return Self.json(.ok, .object(out))
    }

    /// Deletes the dataset with everything made from it (`DatasetStore.delete`) and its part
    /// of the drop folder; exported files stay (business systems may be reading them).
    func deleteDataset(_ name: String, tenant: String) async throws -> Response {
        guard try await DatasetStore.delete(tenant: tenant, name: name, in: pool.next()) else { throw Self.noDataset(name, tenant) }
        if let drop, let folder = try? drop.folder(of: tenant).appendingPathComponent(name, isDirectory: true) {
            try? FileManager.default.removeItem(at: folder)
        }
        return Response(status: .noContent)
    }

    /// A dataset's settings, with its latest version and live forecast.
    func summary(_ d: Dataset, db: PostgresConnection) async throws -> JSONValue {
        guard let latest = try await DatasetStore.latest(tenant: d.tenant, name: d.name, in: db) else { throw Self.noDataset(d.name, d.tenant) }
        return Self.summary(d, latest)
    }

    /// A dataset's settings, with its latest version and live forecast.
    static func summary(_ d: Dataset, _ latest: DatasetStore.Latest) -> JSONValue {
        .object([
            "name": .string(d.name), "horizon": .number(Double(d.horizon)), "frequency": d.frequency.map(JSONValue.string) ?? .null,
            "quantiles": .array(d.quantiles.map(JSONValue.number)), "models": .string(d.models),
            "retrain_wape": d.retrainWAPE.map(JSONValue.number) ?? .null, "retrain_factor": .number(d.retrainFactor),
            "max_error_rate": .number(d.maxErrorRate), "max_file_bytes": .number(Double(d.maxFileBytes)),
            "max_line_bytes": .number(Double(d.maxLineBytes)),
            "latest_version": latest.version.map { .number(Double($0)) } ?? .null,
            "live_forecast_id": latest.liveForecastID.map(JSONValue.string) ?? .null,
        ])
    }

    /// Throws the 404 for a dataset the tenant does not have.
    func requireDataset(_ name: String, tenant: String, db: PostgresConnection) async throws {
        guard try await DatasetStore.find(tenant: tenant, name: name, in: db) != nil else { throw Self.noDataset(name, tenant) }
    }

    static func noDataset(_ name: String, _ tenant: String) -> EventIngress.Problem {
        EventIngress.Problem(.notFound, "tenant \(tenant) has no dataset \(name)")
    }

    // MARK: data

    /// Streams a CSV (or gzip) body into the tenant's part of the drop folder, as a hidden file
    /// the watcher leaves alone, and publishes its `almanac.data.arrived`: the same checked
    /// ingest as a dropped file. Answers 202 with the import's id.
    func upload(_ request: Request, dataset name: String, tenant: String, ingress: EventIngress) async throws -> Response {
        guard let drop else { throw EventIngress.Problem(.serviceUnavailable, "this server takes no uploads (it has no drop folder)") }
        let type = (request.headers[.contentType] ?? "").split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
        guard Self.uploadTypes.contains(type) else {
            throw EventIngress.Problem(.unsupportedMediaType, "send the file as text/csv or application/gzip, not \(EventLimits.quoted(type))")
        }
        guard let d = try await DatasetStore.find(tenant: tenant, name: name, in: pool.next()) else { throw Self.noDataset(name, tenant) }
        let id = "upload-" + UUID().uuidString.lowercased()
        let dir = try drop.folder(of: tenant).appendingPathComponent(name, isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent(".\(id)")
        guard FileManager.default.createFile(atPath: file.path, contents: nil), let out = FileHandle(forWritingAtPath: file.path) else {
            throw EventIngress.Problem(.serviceUnavailable, "cannot write the upload in the drop folder")
        }
        var written: Int64 = 0
        do {
            defer { try? out.close() }
            for try await buffer in request.body {
                written += Int64(buffer.readableBytes)
                guard written <= d.maxFileBytes else {
                    throw EventIngress.Problem(.contentTooLarge, "the upload is over dataset \(name)'s max_file_bytes (\(d.maxFileBytes))")
                }
                try out.write(contentsOf: buffer.readableBytesView)
            }
        } catch {
            try? FileManager.default.removeItem(at: file)
            throw error
        }
        var e = CloudEvent(id: id, source: "almanac/api", type: "almanac.data.arrived", subject: name,
                           json: ["dataset": .string(name), "url": .string("file://" + file.path)])
        e.tenant = tenant
        e.traceparent = CloudEvent.newTraceparent()
        try await ingress.publish([e])
        var response = Self.json(.accepted, ["import_id": .string(id), "status": "pending", "bytes": .number(Double(written))])
        response.headers[.location] = "/v1/datasets/\(name)/imports/\(id)"
        return response
    }

    /// The media types an upload may have.
    static let uploadTypes: Set<String> = ["text/csv", "application/gzip", "application/x-gzip"]

    /// An import's state: `pending` until ingest reports, then `accepted` or `rejected` with
    /// the report (and the version it made), or `failed` when ingest gave up on it.
    func importStatus(dataset name: String, id: String, tenant: String) async throws -> Response {
        guard !id.isEmpty, id.utf8.count <= 200 else { throw EventIngress.Problem(.notFound, "no import \(EventLimits.quoted(id))") }
        let db = pool.next()
        guard let state = try await DatasetStore.importState(tenant: tenant, dataset: name, id: id, in: db) else {
            throw EventIngress.Problem(.notFound, "dataset \(name) of tenant \(tenant) has no import \(EventLimits.quoted(id))")
        }
        var out: [String: JSONValue] = ["import_id": .string(id), "dataset": .string(name)]
        switch state {
        case .reported(let accepted, let report, let version):
            out["status"] = .string(accepted ? "accepted" : "rejected")
            out["report"] = report
            out["version"] = version.map { .number(Double($0)) } ?? .null
        case .failed(let error):
            out["status"] = "failed"
            out["error"] = .string(error)
        case .pending:
            out["status"] = "pending"
        }
        return Self.json(.ok, .object(out))
    }

    // MARK: forecasts

    /// The latest forecast of a dataset (or `forecast_id`'s), for one item or a page of items,
    /// as JSON or, when the client accepts `text/csv` first, as CSV.
    func forecast(_ request: Request, dataset name: String, tenant: String) async throws -> Response {
        let query = request.uri.queryParameters
        let item = query["item"].map(String.init)
        let forecastID = query["forecast_id"].map(String.init)
        if let item, item.utf8.count > 2048 || item.isEmpty { throw EventIngress.Problem(.badRequest, "item must be 1 to 2048 bytes") }
        if let forecastID, forecastID.utf8.count > 200 || forecastID.isEmpty { throw EventIngress.Problem(.badRequest, "forecast_id must be 1 to 200 bytes") }
        let page = try Page(request, defaultLimit: 100)
        let db = pool.next()
        let points = try await ForecastStore.points(tenant: tenant, dataset: name, item: item, forecastID: forecastID,
                                                    after: page.after ?? "", limit: page.limit + 1, in: db)
        if points.isEmpty, try await DatasetStore.find(tenant: tenant, name: name, in: db) == nil { throw Self.noDataset(name, tenant) }
        let table = ForecastTable(points: points, limit: page.limit)
        guard let id = table.forecastID else {
            throw EventIngress.Problem(.notFound, forecastID.map { "dataset \(name) has no forecast \(EventLimits.quoted($0))" + (item.map { " for item \(EventLimits.quoted($0))" } ?? "") }
                                       ?? (item.map { "dataset \(name) has no live forecast for item \(EventLimits.quoted($0))" } ?? "dataset \(name) has no forecast yet"))
        }
        return try Self.forecastAnswer(request, table, dataset: name, forecastID: id)
    }

    /// The QueryForecast path (`?item=` alone, the live forecast). One statement checks the
    /// token and reads which forecast is live for the item (an index probe); the answer for
    /// that forecast comes from `answers` when it was rendered before, else from the item's rows
    /// (by the primary key), rendered and kept. Nil when the request is not of that shape, or
    /// the item has no live forecast (the general path then says why: no such dataset, or no
    /// forecast for the item).
    func oneItemForecast(_ request: Request, dataset name: String, ingress: EventIngress) async throws -> Response? {
        let query = request.uri.queryParameters
        guard let item = query["item"].map(String.init), !item.isEmpty, item.utf8.count <= 2048,
              query["forecast_id"] == nil, query["limit"] == nil, query["cursor"] == nil else { return nil }
        guard case .success(let token) = EventIngress.bearerToken(authorization: request.headers[.authorization]) else { return nil }
        let db = pool.next()
        let probe = try await ForecastProbe.run(tokenDigest: TenantDirectory.digest(token), dataset: name, item: item, in: db)
        let credential: Credential
        switch ingress.admit(probe.credential, needed: .read) {
        case .failure(let p): return p.response
        case .success(let c): credential = c
        }
        let csv = Self.prefersCSV(request)
        if let live = probe.liveForecastID,
           let body = answers.answer(.init(tenant: credential.tenant, dataset: name, item: item, forecastID: live, csv: csv)) {
            return Self.forecastResponse(body, csv: csv, forecastID: live)
        }
        let points = try await ForecastStore.points(tenant: credential.tenant, dataset: name, item: item, forecastID: nil,
                                                    after: "", limit: 2, in: db)
        let table = ForecastTable(points: points, limit: 1)
        guard let id = table.forecastID else { return try await forecast(request, dataset: name, tenant: credential.tenant) }
        let body = Self.forecastBody(table, csv: csv, dataset: name, forecastID: id, next: nil)
        answers.keep(.init(tenant: credential.tenant, dataset: name, item: item, forecastID: id, csv: csv), body)
        return Self.forecastResponse(body, csv: csv, forecastID: id)
    }

    /// A forecast's answer with its content type (and, for CSV, the forecast's id in a header).
    static func forecastResponse(_ body: ByteBuffer, csv: Bool, forecastID: String, next: String? = nil) -> Response {
        var response = Response(status: .ok, headers: [.contentType: csv ? "text/csv; charset=utf-8" : "application/json"],
                                body: .init(byteBuffer: body))
        if csv {
            response.headers[HTTPField.Name("Almanac-Forecast-Id")!] = forecastID
            if let next { response.headers[HTTPField.Name("Almanac-Next-Cursor")!] = next }
        }
        return response
    }

    /// A forecast table as JSON or, when the client prefers it, CSV (with the forecast's id
    /// and the next page's cursor in headers).
    static func forecastAnswer(_ request: Request, _ table: ForecastTable, dataset name: String, forecastID id: String? = nil) throws -> Response {
        let id = id ?? table.forecastID ?? ""
        let next = table.more ? Page.cursor(table.items.last?.id ?? "") : nil
        let csv = Self.prefersCSV(request)
        return forecastResponse(forecastBody(table, csv: csv, dataset: name, forecastID: id, next: next), csv: csv, forecastID: id, next: next)
    }

    /// A forecast table's answer body: CSV, or the JSON document and a newline.
    static func forecastBody(_ table: ForecastTable, csv: Bool, dataset name: String, forecastID id: String, next: String?) -> ByteBuffer {
        ByteBuffer(string: csv ? table.csv() : table.json(dataset: name, forecastID: id, next: next) + "\n")
    }

    /// Whether the `Accept` header asks for CSV before JSON.
    static func prefersCSV(_ request: Request) -> Bool {
        let accept = request.headers[.accept] ?? ""
        for part in accept.split(separator: ",") {
            let type = part.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
            if type == "text/csv" { return true }
            if type == "application/json" || type == "*/*" || type == "application/*" { return false }
        }
        return false
    }
}

/// A page request: `limit` (1 to `ForecastAPI.maxPage`) and the opaque `cursor` a previous page returned.
struct Page {
    var limit: Int
    var after: String?

    /// A page of `limit` after `after`.
    init(limit: Int, after: String? = nil) { (self.limit, self.after) = (limit, after) }

    init(_ request: Request, defaultLimit: Int = 100) throws {
        let q = request.uri.queryParameters
        if let text = q["limit"] {
            guard let n = Int(text), (1...ForecastAPI.maxPage).contains(n) else {
                throw EventIngress.Problem(.badRequest, "limit must be a whole number from 1 to \(ForecastAPI.maxPage), got \(EventLimits.quoted(String(text)))")
            }
            limit = n
        } else {
            limit = defaultLimit
        }
        if let cursor = q["cursor"] {
            var b64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            b64 += String(repeating: "=", count: (4 - b64.count % 4) % 4)
            guard cursor.count <= 4096, let data = Data(base64Encoded: b64), let text = String(data: data, encoding: .utf8), !text.isEmpty else {
                throw EventIngress.Problem(.badRequest, "cursor is not one this API returned")
            }
            after = text
        }
    }

    /// The cursor that resumes after `key`.
    static func cursor(_ key: String) -> String {
        Data(key.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
