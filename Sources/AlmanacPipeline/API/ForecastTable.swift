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

    /// Reads rows ordered by item and time, keeping the first `limit` items.
    init(rows: PostgresRows, limit: Int) throws {
        for r in rows {
            let item: String = try r.decode("item_id")
            if items.last?.id != item {
                if items.count == limit { more = true; break }
                items.append(Item(id: item, points: []))
            }
            if forecastID == nil {
                forecastID = try r.decode("forecast_id")
                levels = (r.text("levels") ?? "").split(separator: ",").compactMap { Double($0) }
            }
            let q = (r.text("q") ?? "").split(separator: ",").compactMap { Double($0) }
            items[items.count - 1].points.append((try r.decode("ts"), try r.decode("mean"), q))
        }
    }

    var columns: [String] { levels.map(ForecastEngine.columnName(for:)) }

    /// `{dataset, forecast_id, quantiles, items: [{item_id, points: [{timestamp, mean, p10, …}]}], next_cursor}`.
    func json(dataset: String, forecastID: String, next: String?) -> JSONValue {
        let names = columns
        return .object([
            "dataset": .string(dataset), "forecast_id": .string(forecastID), "quantiles": .array(levels.map(JSONValue.number)),
            "items": .array(items.map { item in
                .object(["item_id": .string(item.id), "points": .array(item.points.map { p in
                    var point: [String: JSONValue] = ["timestamp": .string(RFC3339.format(p.ts)), "mean": .number(p.mean)]
                    for (name, v) in zip(names, p.q) { point[name] = .number(v) }
                    return .object(point)
                })])
            }),
            "next_cursor": next.map(JSONValue.string) ?? .null,
        ])
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
