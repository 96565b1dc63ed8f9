import Foundation

/// Rolling-origin backtests: a model is fitted on the history up to a cut-off and scored on
/// the `horizon` values after it, for several cut-offs.
///
/// As Amazon Forecast's `BackTestWindowOffset`: the latest window's cut-off lies `offset`
/// steps before the end of the data (default: the horizon, so its test values are the last
/// ones); each earlier window moves the cut-off back by the horizon.
public struct BacktestPlan: Sendable, Equatable {
    /// How many windows.
    public var windows: Int
    /// Steps from the end of the data to the latest cut-off.
    public var offset: Int
    /// Steps forecast and scored per window.
    public var horizon: Int

    /// Makes a plan; `offset` defaults to the horizon.
    public init(windows: Int, horizon: Int, offset: Int? = nil) {
        self.windows = windows
        self.horizon = horizon
        self.offset = offset ?? horizon
    }

    /// The cut-offs (history lengths) for a series of `count` values, latest first; windows
    /// that would leave fewer than `minimumHistory` values to fit on are dropped.
    public func cutoffs(count: Int, minimumHistory: Int = 2) -> [Int] {
        (0..<windows).map { count - offset - $0 * horizon }.filter { $0 >= minimumHistory && $0 + 1 <= count }
    }
}

/// Accuracy of forecasts against actuals, accumulated over series and windows.
public struct BacktestScore: Sendable {
    /// Quantile levels scored.
    public let levels: [Double]
    private var pinball: [Double: Double] = [:]
    private var absActual = 0.0
    private var absError = 0.0
    private var squaredError = 0.0
    private var points = 0
    private var smapes: [Double] = []
    private var mapes: [Double] = []
    private var mases: [Double] = []
    private var msises: [Double] = []
    private var inside = 0
    private var scored = 0

    /// An empty score for these levels.
    public init(levels: [Double]) { self.levels = levels.sorted() }

    /// Adds one window of one series.
    /// - Parameters:
    ///   - insample: the history the forecast was made from (for the MASE and MSIS scale).
    ///   - season: the season length of the scale.
    public mutating func add(actual: [Double], forecast: Forecast, insample: [Double], season: Int) {
        let n = min(actual.count, forecast.mean.count)
        let y = Array(actual.prefix(n)), f = Array(forecast.mean.prefix(n))
        let point = forecast.quantiles[0.5].map { Array($0.prefix(n)) } ?? f
        for l in levels {
            guard let q = forecast.quantiles[l] else { continue }
            for i in 0..<n where !y[i].isNaN {
                pinball[l, default: 0] += y[i] >= q[i] ? l * (y[i] - q[i]) : (1 - l) * (q[i] - y[i])
            }
        }
        for i in 0..<n where !y[i].isNaN {
            absActual += abs(y[i])
            absError += abs(y[i] - point[i])
            squaredError += (y[i] - f[i]) * (y[i] - f[i])
            points += 1
        }
        smapes.append(Metrics.smape(actual: y, forecast: point))
        let mape = Metrics.mape(actual: y, forecast: point)
        if !mape.isNaN { mapes.append(mape) }
        let mase = Metrics.mase(actual: y, forecast: point, insample: insample, season: season)
        if mase.isFinite { mases.append(mase) }
        if let lo = levels.first, let hi = levels.last, lo < 0.5, hi > 0.5, let lq = forecast.quantiles[lo], let hq = forecast.quantiles[hi] {
            let alpha = lo + (1 - hi)
            let msis = Metrics.msis(actual: y, lower: Array(lq.prefix(n)), upper: Array(hq.prefix(n)), insample: insample, season: season, alpha: alpha)
            if msis.isFinite { msises.append(msis) }
            for i in 0..<n where !y[i].isNaN {
                scored += 1
                if y[i] >= lq[i] && y[i] <= hq[i] { inside += 1 }
            }
        }
    }

    /// The metrics by name: `wQL[p10]`… and `avg_wQL`, `WAPE`, `RMSE`, `MAPE`, `sMAPE`, `MASE`,
    /// `MSIS` and `coverage` (of the outermost interval). Series and windows are pooled for
    /// the weighted metrics and averaged for the per-series ones.
    public var metrics: [(name: String, value: Double)] {
        var out: [(String, Double)] = []
        var wqls: [Double] = []
        for l in levels {
            let v = absActual == 0 ? Double.nan : 2 * (pinball[l] ?? 0) / absActual
            wqls.append(v)
            out.append(("wQL[\(ForecastEngine.columnName(for: l))]", v))
        }
        func mean(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count) }
        out.append(("avg_wQL", mean(wqls)))
        out.append(("WAPE", absActual == 0 ? .nan : absError / absActual))
        out.append(("RMSE", points == 0 ? .nan : (squaredError / Double(points)).squareRoot()))
        out.append(("MAPE", mean(mapes)))
        out.append(("sMAPE", mean(smapes)))
        out.append(("MASE", mean(mases)))
        out.append(("MSIS", mean(msises)))
        out.append(("coverage", scored == 0 ? .nan : Double(inside) / Double(scored)))
        return out
    }

    /// One metric by name.
    public func value(_ name: String) -> Double? { metrics.first { $0.name == name }?.value }
}

extension ForecastEngine {
    /// Backtests a model on every series by the plan, in parallel.
    /// - Returns: the pooled score and how many windows were scored.
    public static func backtest(_ series: [TimeSeries], model: any ForecastModel, plan: BacktestPlan, levels: [Double],
                                seasons: [Int]? = nil) async -> (score: BacktestScore, windows: Int) {
        let workers = max(1, min(series.count, ProcessInfo.processInfo.activeProcessorCount))
        let parts = await withTaskGroup(of: (BacktestScore, Int).self) { group in
            for w in 0..<workers {
                group.addTask {
                    var score = BacktestScore(levels: levels)
                    var count = 0
                    for i in stride(from: w, to: series.count, by: workers) {
                        let s = series[i]
                        let m = seasons ?? s.frequency.defaultSeasons
                        for cut in plan.cutoffs(count: s.values.count) {
                            let history = Array(s.values[..<cut])
                            let actual = Array(s.values[cut..<min(s.values.count, cut + plan.horizon)])
                            let fc = model.forecast(history, horizon: actual.count, seasons: m, levels: levels)
                            score.add(actual: actual, forecast: fc, insample: history, season: m.main)
                            count += 1
                        }
                    }
                    return (score, count)
                }
            }
            var all: [(BacktestScore, Int)] = []
            for await part in group { all.append(part) }
            return all
        }
        var total = BacktestScore(levels: levels)
        var windows = 0
        for (part, n) in parts {
            total.merge(part)
            windows += n
        }
        return (total, windows)
    }
}

extension BacktestScore {
    /// Adds another score's sums (for combining parallel workers).
    public mutating func merge(_ other: BacktestScore) {
        for (l, v) in other.pinball { pinball[l, default: 0] += v }
        absActual += other.absActual
        absError += other.absError
        squaredError += other.squaredError
        points += other.points
        smapes += other.smapes
        mapes += other.mapes
        mases += other.mases
        msises += other.msises
        inside += other.inside
        scored += other.scored
    }
}
