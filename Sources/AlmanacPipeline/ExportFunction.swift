import AlmanacCore
import AlmanacForecast
import AlmanacPostgres
import AlmanacFunctions
import Foundation

/// The export function: on `almanac.forecast.created`, replaces the dataset's rows in
/// `latest_forecasts` (one transaction: a reader sees one forecast or the other, never a mix),
/// writes `<export>/<tenant>/<dataset>/<forecast>.csv` (`item_id,date,p10,p50,p90`, as Amazon Forecast
/// exports) and a chart (`.svg`: history, p50 and the outer band for the first items), and
/// emits `almanac.forecast.exported`.
public struct ExportFunction: EventHandler {
    /// The export folder.
    public let folder: String
    /// Items drawn in the chart.
    public var chartItems = 4

    /// Makes the handler.
    public init(folder: String) { self.folder = folder }

    /// Exports one forecast.
    public func handle(_ created: ForecastCreated, event: CloudEvent, context: FunctionContext) async throws {
        let db = try context.database
        let (id, named) = (created.forecastID, created.dataset)
        // The forecast is looked up within the event's tenant: another tenant's forecast id is
        // "not stored" here, and the folder is named by what Postgres holds, not by the event.
        let tenant = event.tenant
        guard let f = try await ForecastStore.head(tenant: tenant, id: id, in: db) else {
            throw FunctionError("forecast \(EventLimits.quoted(id)) is not stored for tenant \(tenant)", retriable: false)
        }
        let name = f.dataset
        guard named == name else {
            throw FunctionError("forecast \(id) is of dataset \(name), not \(EventLimits.quoted(named)) as the event says", retriable: false)
        }
        let levels = f.levels
        let byItem = try await ForecastStore.steps(of: id, in: db)

        // The CSV, written whole to a temporary name and renamed.
        let dir: URL
        do { dir = try Self.directory(root: folder, tenant: tenant, dataset: name) } catch let e as InvalidName {
            throw FunctionError(e.message, retriable: false)
        }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var csv = "item_id,date," + levels.map(ForecastEngine.columnName(for:)).joined(separator: ",") + "\n"
        for (item, steps) in byItem {
            for step in steps {
                csv += CSVField.quote(item) + "," + RFC3339.format(step.ts) + "," + step.quantiles.map { String($0) }.joined(separator: ",") + "\n"
            }
        }
        let csvURL = dir.appendingPathComponent("\(id).csv")
        try write(csv, to: csvURL)
        try write(csv, to: dir.appendingPathComponent("latest.csv"))

        // The chart: the last history points of the first items.
        var panels: [ForecastChart.Panel] = []
        for (item, steps) in byItem.prefix(chartItems) {
            let history = try await ForecastStore.history(tenant: tenant, dataset: name, item: item, last: max(24, steps.count * 3), in: db)
            panels.append(ForecastChart.Panel(item: item, history: history, steps: steps.map { ($0.ts, $0.quantiles) }, levels: levels))
        }
        let chartURL = dir.appendingPathComponent("\(id).svg")
        let chart = ForecastChart.svg(title: "\(name) — forecast \(id)", panels: panels)
        try write(chart, to: chartURL)
        try write(chart, to: dir.appendingPathComponent("latest.svg"))

        let createdAt = f.createdAt
        context.write("latest_forecasts of \(name) ← \(id)") { tx in
            try await ForecastStore.publishLatest(tenant: tenant, dataset: name, id: id, createdAt: createdAt, in: tx)
        }
        context.emit(ForecastExported(dataset: name, forecastID: id, rows: byItem.reduce(0) { $0 + $1.steps.count }, csv: csvURL.path, chart: chartURL.path),
                     subject: name)
        context.logger.info("forecast exported", metadata: ["dataset": "\(name)", "forecast": "\(id)", "csv": "\(csvURL.path)"])
    }

    /// The dataset's export folder, `<root>/<tenant>/<dataset>`: each tenant's exports apart.
    /// - Throws: `InvalidName` when the tenant or dataset is not a `Slug`.
    public static func directory(root: String, tenant: String, dataset: String) throws -> URL {
        try Slug.check(tenant, what: "tenant", maxLength: Slug.maxTenantLength)
        try Slug.check(dataset, what: "dataset", maxLength: Slug.maxDatasetLength)
        return URL(fileURLWithPath: root).appendingPathComponent(tenant, isDirectory: true).appendingPathComponent(dataset, isDirectory: true)
    }

    func write(_ text: String, to url: URL) throws {
        let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp")
        try Data(text.utf8).write(to: temp)
        guard rename(temp.path, url.path) == 0 else {
            throw PipelineError("cannot write \(url.path): \(String(cString: strerror(errno)))")
        }
    }
}

/// A small SVG chart of forecasts: per item, the history, the p50 and the outer quantile band.
public enum ForecastChart {
    /// One item's panel.
    public struct Panel: Sendable {
        /// The item.
        public var item: String
        /// Its last observations.
        public var history: [(Date, Double)]
        /// Forecast steps: timestamp and the quantiles in `levels` order.
        public var steps: [(Date, [Double])]
        /// The quantile levels.
        public var levels: [Double]
    }

    /// The chart: panels stacked vertically, 720 × 200 each.
    public static func svg(title: String, panels: [Panel]) -> String {
        let width = 720.0, height = 200.0, pad = 40.0
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(30 + height * Double(panels.count)))" font-family="sans-serif" font-size="12">
            <text x="10" y="20" font-size="14">\(escape(title))</text>

            """
        for (n, p) in panels.enumerated() {
            let top = 30 + height * Double(n)
            let times = p.history.map(\.0) + p.steps.map(\.0)
            let values = p.history.map(\.1) + p.steps.flatMap(\.1)
            guard let t0 = times.min(), let t1 = times.max(), let lo = values.min(), let hi = values.max() else { continue }
            let span = max(t1.timeIntervalSince(t0), 1), range = max(hi - lo, 1e-9)
            func x(_ t: Date) -> Double { pad + (width - 2 * pad) * t.timeIntervalSince(t0) / span }
            func y(_ v: Double) -> Double { top + height - 25 - (height - 45) * (v - lo) / range }
            func path(_ pts: [(Date, Double)]) -> String {
                pts.map { String(format: "%.1f,%.1f", x($0.0), y($0.1)) }.joined(separator: " ")
            }
            out += "<text x=\"\(pad)\" y=\"\(top + 14)\">\(escape(p.item))</text>\n"
            if let loIndex = p.levels.indices.first, let hiIndex = p.levels.indices.last, loIndex != hiIndex {
                let band = p.steps.map { ($0.0, $0.1[hiIndex]) } + p.steps.reversed().map { ($0.0, $0.1[loIndex]) }
                out += "<polygon points=\"\(path(band))\" fill=\"#9ecae1\" fill-opacity=\"0.6\"/>\n"
            }
            out += "<polyline points=\"\(path(p.history))\" fill=\"none\" stroke=\"#333\" stroke-width=\"1.2\"/>\n"
            if let mid = p.levels.firstIndex(where: { abs($0 - 0.5) < 1e-9 }) ?? (p.levels.isEmpty ? nil : p.levels.count / 2) {
                out += "<polyline points=\"\(path(p.steps.map { ($0.0, $0.1[mid]) }))\" fill=\"none\" stroke=\"#08519c\" stroke-width=\"1.5\"/>\n"
            }
            out += String(format: "<text x=\"4\" y=\"%.1f\">%.4g</text><text x=\"4\" y=\"%.1f\">%.4g</text>\n", y(hi) + 4, hi, y(lo), lo)
        }
        return out + "</svg>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
