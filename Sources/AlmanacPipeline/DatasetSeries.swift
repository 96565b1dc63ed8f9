import AlmanacForecast
import AlmanacPostgres
import Foundation

/// A dataset's series as the forecasting library takes them, read with `dataset_observations`.
public struct DatasetSeries: Sendable {
    /// The series, by item id.
    public var series: [TimeSeries]
    /// The dataset version they were read at.
    public var version: Int

    /// The dataset's latest version (0 when it has none).
    public static func latestVersion(of d: Dataset, in db: PostgresConnection) async throws -> Int {
        let r = try await db.query("SELECT coalesce(max(version), 0) AS v FROM dataset_versions WHERE tenant = $1 AND dataset = $2",
                                   [d.tenant, d.name])
        return try r[0].decode("v")
    }

    /// The dataset's item ids after `after`, by id, that contain `containing` (case-insensitive;
    /// all when empty): the items of the live forecast, or of the data before there is one.
    public static func itemIDs(tenant: String, dataset: String, after: String, containing: String, limit: Int,
                               in db: PostgresConnection) async throws -> [String] {
        try await db.query("""
            SELECT item_id FROM (
                SELECT DISTINCT item_id FROM latest_forecasts WHERE tenant = $1 AND dataset = $2
                UNION
                SELECT DISTINCT item_id FROM dataset_observations($1, $2)
                WHERE NOT EXISTS (SELECT 1 FROM latest_forecasts WHERE tenant = $1 AND dataset = $2)
            ) i
            WHERE item_id > $3 AND ($4 = '' OR strpos(lower(item_id), lower($4)) > 0)
            ORDER BY item_id LIMIT $5
            """, [tenant, dataset, after, containing, limit]).map { try $0.decode("item_id") }
    }

    /// The timestamps of an item's last `count` observations as of dataset version `version`, oldest first.
    public static func lastTimestamps(tenant: String, dataset: String, item: String, upToVersion version: Int, count: Int,
                                      in db: PostgresConnection) async throws -> [Date] {
        try await db.query("""
            SELECT ts FROM (SELECT ts FROM dataset_observations($1, $2, $3) WHERE version <= $4 ORDER BY ts DESC LIMIT $5) w ORDER BY ts
            """, [tenant, dataset, item, version, count]).map { try $0.decode("ts") }
    }

    /// Reads every item of the dataset, gaps filled with zero (Amazon Forecast's default
    /// middle fill for the target).
    /// - Throws: `PipelineError` naming the item whose timestamps do not fit one grid.
    public static func load(_ d: Dataset, from db: PostgresConnection) async throws -> DatasetSeries {
        let version = try await latestVersion(of: d, in: db)
        let rows = try await db.query("""
            SELECT item_id, extract(epoch FROM ts)::float8 AS t, value FROM dataset_observations($1, $2) ORDER BY item_id, ts
            """, [d.tenant, d.name])
        let frequency = d.frequency.flatMap { Frequency(rawValue: $0) }
        var out: [TimeSeries] = []
        var item = "", times: [Date] = [], values: [Double] = []
        func flush() throws {
            guard !times.isEmpty else { return }
            do {
                out.append(try SeriesReader.series(item: item, times: times, values: values, frequency: frequency, fill: .zero))
            } catch let e as ForecastInputError {
                throw PipelineError("dataset \(d.name), item \(item): \(e.message)")
            }
            times.removeAll(keepingCapacity: true)
            values.removeAll(keepingCapacity: true)
        }
        for r in rows {
            let id = r.text("item_id") ?? ""
            if id != item { try flush(); item = id }
            times.append(Date(timeIntervalSince1970: try r.decode("t")))
            values.append(try r.decode("value"))
        }
        try flush()
        return DatasetSeries(series: out, version: version)
    }
}
