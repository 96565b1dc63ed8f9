import Foundation

/// Forecast accuracy measures, as Amazon Forecast and the M4 competition define them.
///
/// Every function takes actuals and forecasts of equal length; NaN actuals are skipped.
public enum Metrics {
    /// Symmetric MAPE in percent: mean of 200·|y−f| / (|y|+|f|) (terms with y = f = 0 count 0).
    public static func smape(actual: [Double], forecast: [Double]) -> Double {
        mean(zip(actual, forecast).compactMap { y, f in
            guard !y.isNaN else { return nil }
            let d = abs(y) + abs(f)
            return d == 0 ? 0 : 200 * abs(y - f) / d
        })
    }

    /// MAPE in percent, over actuals that are not zero.
    public static func mape(actual: [Double], forecast: [Double]) -> Double {
        mean(zip(actual, forecast).compactMap { y, f in y.isNaN || y == 0 ? nil : 100 * abs(y - f) / abs(y) })
    }

    /// Root mean squared error.
    public static func rmse(actual: [Double], forecast: [Double]) -> Double {
        mean(zip(actual, forecast).compactMap { y, f in y.isNaN ? nil : (y - f) * (y - f) }).squareRoot()
    }

    /// Weighted absolute percentage error: Σ|y−f| / Σ|y|.
    public static func wape(actual: [Double], forecast: [Double]) -> Double {
        var num = 0.0, den = 0.0
        for (y, f) in zip(actual, forecast) where !y.isNaN {
            num += abs(y - f)
            den += abs(y)
        }
        return den == 0 ? .nan : num / den
    }

    /// The in-sample scale of MASE and MSIS: mean |x_t − x_{t−m}| for t > m.
    public static func seasonalScale(insample x: [Double], season m: Int) -> Double {
        let m = max(1, m)
        guard x.count > m else { return .nan }
        var s = 0.0, n = 0
        for t in m..<x.count where !x[t].isNaN && !x[t - m].isNaN {
            s += abs(x[t] - x[t - m])
            n += 1
        }
        return n == 0 ? .nan : s / Double(n)
    }

    /// Mean absolute scaled error with season length `m`.
    public static func mase(actual: [Double], forecast: [Double], insample: [Double], season m: Int) -> Double {
        let scale = seasonalScale(insample: insample, season: m)
        return mean(zip(actual, forecast).compactMap { y, f in y.isNaN ? nil : abs(y - f) }) / scale
    }

    /// Weighted quantile loss at quantile q: 2·Σ pinball_q(y, f) / Σ|y|.
    public static func wql(actual: [Double], quantile: [Double], q: Double) -> Double {
        var num = 0.0, den = 0.0
        for (y, f) in zip(actual, quantile) where !y.isNaN {
            num += y >= f ? q * (y - f) : (1 - q) * (f - y)
            den += abs(y)
        }
        return den == 0 ? .nan : 2 * num / den
    }

    /// Mean scaled interval score of the (1−α) interval [lower, upper].
    public static func msis(actual: [Double], lower: [Double], upper: [Double], insample: [Double], season m: Int, alpha: Double = 0.05) -> Double {
        let scale = seasonalScale(insample: insample, season: m)
        var terms: [Double] = []
        for i in actual.indices where !actual[i].isNaN {
            let (y, l, u) = (actual[i], lower[i], upper[i])
            var s = u - l
            if y < l { s += 2 / alpha * (l - y) }
            if y > u { s += 2 / alpha * (y - u) }
            terms.append(s)
        }
        return mean(terms) / scale
    }

    /// The share of actuals inside [lower, upper].
    public static func coverage(actual: [Double], lower: [Double], upper: [Double]) -> Double {
        var inside = 0, n = 0
        for i in actual.indices where !actual[i].isNaN {
            n += 1
            if actual[i] >= lower[i] && actual[i] <= upper[i] { inside += 1 }
        }
        return n == 0 ? .nan : Double(inside) / Double(n)
    }

    static func mean(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count) }
}

/// The standard normal distribution's quantile function (Acklam's rational approximation,
/// refined by one Halley step; relative error below 1e-15 in double precision).
public func normalQuantile(_ p: Double) -> Double {
    precondition(p > 0 && p < 1, "normalQuantile needs 0 < p < 1, got \(p)")
    let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
    let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01]
    let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
    let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
    let low = 0.02425
    var x: Double
    if p < low {
        let q = (-2 * log(p)).squareRoot()
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    } else if p <= 1 - low {
        let q = p - 0.5, r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    } else {
        let q = (-2 * log(1 - p)).squareRoot()
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    }
    // One Halley step against the exact CDF.
    let e = 0.5 * erfc(-x / 2.0.squareRoot()) - p
    let u = e * (2 * Double.pi).squareRoot() * exp(x * x / 2)
    x -= u / (1 + x * u / 2)
    return x
}
