import Foundation

/// Forecasts many series at once, in parallel on every core.
public enum ForecastEngine {
    /// Forecasts every series with one model.
    /// - Parameters:
    ///   - seasons: the season lengths for all series; nil takes each series' frequency defaults.
    ///   - progress: called with (done, total) as series finish (from worker tasks).
    /// - Returns: one forecast per series, in input order.
    public static func run(_ series: [TimeSeries], model: any ForecastModel, horizon: Int, levels: [Double], seasons: [Int]? = nil,
                           progress: (@Sendable (Int, Int) -> Void)? = nil) async -> [Forecast] {
        await map(series, progress: progress) { s in
            model.forecast(s.values, horizon: horizon, seasons: seasons ?? s.frequency.defaultSeasons, levels: levels)
        }
    }

    /// Applies `body` to every series, in parallel on every core.
    /// - Parameter progress: called with (done, total) as series finish (from worker tasks).
    /// - Returns: the results in input order.
    public static func map<T: Sendable>(_ series: [TimeSeries], progress: (@Sendable (Int, Int) -> Void)? = nil,
                                        _ body: @escaping @Sendable (TimeSeries) -> T) async -> [T] {
        let workers = max(1, min(series.count, ProcessInfo.processInfo.activeProcessorCount))
        let counter = ProgressCounter(total: series.count, report: progress)
        let parts = await withTaskGroup(of: [(Int, T)].self) { group in
            for w in 0..<workers {
                group.addTask {
                    var out: [(Int, T)] = []
                    for i in stride(from: w, to: series.count, by: workers) {
                        out.append((i, body(series[i])))
                        counter.tick()
                    }
                    return out
                }
            }
            var all: [(Int, T)] = []
            for await part in group { all += part }
            return all
        }
        var result = [T?](repeating: nil, count: series.count)
        for (i, r) in parts { result[i] = r }
        return result.map { $0! }
    }

    /// The CSV `almanac forecast` writes: `item_id,timestamp,mean` and a `p<percent>` column per level.
    public static func csv(series: [TimeSeries], forecasts: [Forecast], levels: [Double]) -> String {
        var out = "item_id,timestamp,mean" + levels.map { ",\(columnName(for: $0))" }.joined() + "\n"
        for (s, f) in zip(series, forecasts) {
            for h in f.mean.indices {
                out += s.id + "," + formatTimestamp(s.timestamp(at: s.values.count + h)) + "," + number(f.mean[h])
                for l in levels { out += "," + number(f.quantiles[l]?[h] ?? .nan) }
                out += "\n"
            }
        }
        return out
    }

    /// `p` followed by the level in percent: 0.1 → `p10`, 0.025 → `p2.5`.
    public static func columnName(for level: Double) -> String {
        "p" + String(format: "%g", (level * 100 * 1e9).rounded() / 1e9)
    }

    static func number(_ v: Double) -> String {
        v.rounded() == v && abs(v) < 1e15 ? String(Int64(v)) : String(format: "%.6g", v)
    }

    /// `YYYY-MM-DD HH:MM:SS` in UTC.
    public static func formatTimestamp(_ d: Date) -> String {
        let raw = d.timeIntervalSince1970
        var t = time_t(raw.isNaN ? 0 : min(max(raw, -62_135_596_800), 253_402_300_799).rounded())
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }
}

/// Counts finished series and reports at most every 1% of the total.
final class ProgressCounter: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var done = 0
    private let total: Int
    private let report: (@Sendable (Int, Int) -> Void)?

    init(total: Int, report: (@Sendable (Int, Int) -> Void)?) {
        self.total = total
        self.report = report
    }

    func tick() {
        let n: Int = lock.withLock { done += 1; return done }
        if let report, n == total || n % max(1, total / 100) == 0 { report(n, total) }
    }
}
