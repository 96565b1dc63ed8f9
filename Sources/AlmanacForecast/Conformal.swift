import Foundation

/// Split-conformal widening of a forecast's quantiles from its own backtest windows: where
/// the model's intervals missed more often than their level claims, each quantile's distance
/// from the mean is stretched by the factor that would have made the windows' forecasts cover
/// as claimed (the finite-sample conformal quantile of the scaled errors). Intervals are only
/// widened, never narrowed, and the median and mean stay as they are.
public enum Conformal {
    /// The fewest backtest points a level is calibrated from; with fewer it is left as is.
    public static let minimumPoints = 8
    /// The most a quantile's distance from the mean is stretched.
    public static let maximumStretch = 10.0

    /// The stretch (from 1 to `maximumStretch`) of each level other than 0.5, from backtest
    /// windows: each window's actual values and the forecast made for them.
    public static func stretches(windows: [(actual: [Double], forecast: Forecast)], levels: [Double]) -> [Double: Double] {
        var out: [Double: Double] = [:]
        for level in levels where level != 0.5 {
            // r = (actual − mean) / (q − mean): the level's quantile covers a value when r ≤ 1,
            // on either side of the mean.
            var ratios: [Double] = []
            for (actual, forecast) in windows {
                guard let q = forecast.quantiles[level] else { continue }
                for (h, a) in actual.enumerated() where h < q.count && h < forecast.mean.count {
                    let d = q[h] - forecast.mean[h]
                    guard a.isFinite, d.isFinite, (level > 0.5 && d > 0) || (level < 0.5 && d < 0) else { continue }
                    ratios.append((a - forecast.mean[h]) / d)
                }
            }
            guard ratios.count >= minimumPoints else { continue }
            ratios.sort()
            let target = level > 0.5 ? level : 1 - level
            let k = min(ratios.count, Int((Double(ratios.count + 1) * target).rounded(.up)))
            out[level] = min(maximumStretch, max(1, ratios[k - 1]))
        }
        return out
    }

    /// The forecast with each level's distance from the mean stretched, quantiles kept from crossing.
    public static func calibrated(_ f: Forecast, stretches: [Double: Double]) -> Forecast {
        guard stretches.values.contains(where: { $0 > 1 }) else { return f }
        var out = f
        for (level, stretch) in stretches where stretch > 1 {
            guard let q = f.quantiles[level], q.count == f.mean.count else { continue }
            out.quantiles[level] = zip(q, f.mean).map { m in m.1 + stretch * (m.0 - m.1) }
        }
        return out.noncrossing()
    }
}
