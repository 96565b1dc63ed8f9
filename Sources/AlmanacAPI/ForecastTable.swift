import AlmanacPipeline
import AlmanacControlPlane
import AlmanacCore
import AlmanacForecast
import AlmanacPostgres
import Foundation

/// The rows of one forecast for a page of items, as the API answers them.
struct ForecastTable {
    struct Item {
        var id: String
        var points: [(ts: Date, mean: Double, q: [Double])]
    }

    var forecastID: String?
    var levels: [Double] = []
    var items: [Item] = []
    /// Whether items beyond this page exist.
    var more = false

    /// A table of the given items.
    init(forecastID: String?, levels: [Double], items: [Item], more: Bool = false) {
        (self.forecastID, self.levels, self.items, self.more) = (forecastID, levels, items, more)
    }

    /// Reads points ordered by item and time, keeping the first `limit` items.
    init(points: [ForecastStore.Point], limit: Int) {
        for p in points {
            if items.last?.id != p.itemID {
                if items.count == limit { more = true; break }
                items.append(Item(id: p.itemID, points: []))
            }
            if forecastID == nil { (forecastID, levels) = (p.forecastID, p.levels) }
            items[items.count - 1].points.append((p.ts, p.mean, p.q))
        }
    }

    var columns: [String] { levels.map(ForecastEngine.columnName(for:)) }

    /// `{dataset, forecast_id, items: [{item_id, points: [{mean, p10, …, timestamp}]}], next_cursor, quantiles}`,
    /// written straight into text (keys sorted, as `JSONValue.serialized` writes them): a
    /// forecast query answers this for every request, and a tree of values per point cost
    /// more than the lookup itself.
    func json(dataset: String, forecastID: String, next: String?) -> String {
        var out = "{\"dataset\":"
        JSONValue.writeString(dataset, to: &out)
        out += ",\"forecast_id\":"
        JSONValue.writeString(forecastID, to: &out)
        out += ",\"items\":["
        // A point's members in key order: mean, the quantile columns and timestamp, sorted.
        let names = columns
        let keys = (["mean", "timestamp"] + names).sorted()
        var written = [String](repeating: "", count: keys.count)
        for (i, key) in keys.enumerated() {
            var k = ""
            JSONValue.writeString(key, to: &k)
            written[i] = k + ":"
        }
        let column = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        for (n, item) in items.enumerated() {
            if n > 0 { out += "," }
            out += "{\"item_id\":"
            JSONValue.writeString(item.id, to: &out)
            out += ",\"points\":["
            for (m, p) in item.points.enumerated() {
                if m > 0 { out += "," }
                out += "{"
                var first = true
                for (i, key) in keys.enumerated() {
                    let value: String
                    switch key {
                    case "mean": value = JSONValue.format(p.mean)
                    case "timestamp": value = "\"" + RFC3339.format(p.ts) + "\""
                    default:
                        guard let c = column[key], c < p.q.count else { continue }
                        value = JSONValue.format(p.q[c])
                    }
                    if !first { out += "," }
                    first = false
                    out += written[i]
                    out += value
                }
                out += "}"
            }
            out += "]}"
        }
        out += "],\"next_cursor\":"
        if let next { JSONValue.writeString(next, to: &out) } else { out += "null" }
        out += ",\"quantiles\":["
        out += levels.map(JSONValue.format).joined(separator: ",")
        out += "]}"
        return out
    }

    /// `item_id,date,p10,p50,p90` (as export writes), ids quoted where needed.
    func csv() -> String {
        var out = "item_id,date," + columns.joined(separator: ",") + "\n"
        for item in items {
            for p in item.points {
                out += CSVField.quote(item.id) + "," + RFC3339.format(p.ts) + "," + p.q.map { String($0) }.joined(separator: ",") + "\n"
            }
        }
        return out
    }
}
