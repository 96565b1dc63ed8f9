import Foundation

/// Seasonal decompositions: classical (moving averages), STL (Cleveland et al., 1990) and
/// MSTL for several season lengths (Bandara, Hyndman & Bergmeir, 2021).
public enum Decomposition {
    /// The classical decomposition's seasonal figure: the mean of the detrended values
    /// (centred moving average of length m) at each position `t % m`, normalised to sum 0
    /// (additive) or to mean 1 (multiplicative). Needs at least 2m values.
    public static func seasonalIndices(_ y: [Double], period m: Int, multiplicative: Bool) -> [Double] {
        let n = y.count
        guard m > 1, n >= 2 * m else { return Array(repeating: multiplicative ? 1 : 0, count: max(1, m)) }
        let half = m / 2
        var sums = [Double](repeating: 0, count: m), counts = [Double](repeating: 0, count: m)
        for t in half..<(n - half) {
            var trend = 0.0
            if m % 2 == 0 {
                trend = 0.5 * (y[t - half] + y[t + half])
                for k in (t - half + 1)..<(t + half) { trend += y[k] }
            } else {
                for k in (t - half)...(t + half) { trend += y[k] }
            }
            trend /= Double(m)
            guard !multiplicative || trend != 0 else { continue }
            sums[t % m] += multiplicative ? y[t] / trend : y[t] - trend
            counts[t % m] += 1
        }
        var figure = (0..<m).map { counts[$0] > 0 ? sums[$0] / counts[$0] : (multiplicative ? 1 : 0) }
        let centre = Numeric.mean(figure)
        figure = figure.map { multiplicative ? $0 / centre : $0 - centre }
        return figure
    }

    /// Whether the series has a significant season of length m: the autocorrelation at lag m
    /// beyond the 90% limit of Bartlett's formula (the M4 benchmarks' test).
    public static func isSeasonal(_ y: [Double], period m: Int) -> Bool {
        guard m > 1, y.count >= 3 * m else { return false }
        let r = Numeric.acf(y, maxLag: m)
        var s = 1.0
        for k in 0..<(m - 1) { s += 2 * r[k] * r[k] }
        return abs(r[m - 1]) > 1.645 * (s / Double(y.count)).squareRoot()
    }

    /// An STL decomposition: y = seasonal + trend + remainder.
    public struct Components: Sendable {
        /// The seasonal part of each season length, in the order given.
        public var seasonal: [[Double]]
        /// The trend.
        public var trend: [Double]
        /// y minus every seasonal part (trend plus remainder).
        public var adjusted: [Double]
    }

    /// STL with a periodic-free seasonal smoother of span `seasonalWindow` (odd, ≥ 7), the
    /// usual trend and low-pass spans, and two inner passes (not robust).
    public static func stl(_ y: [Double], period np: Int, seasonalWindow: Int) -> (seasonal: [Double], trend: [Double]) {
        let n = y.count
        let ns = odd(max(3, seasonalWindow))
        let nt = odd(Int((1.5 * Double(np) / (1 - 1.5 / Double(ns))).rounded(.up)))
        let nl = odd(np)
        var trend = [Double](repeating: 0, count: n)
        var seasonal = [Double](repeating: 0, count: n)
        var work = [Double](repeating: 0, count: n)
        for _ in 0..<2 {
            for i in 0..<n { work[i] = y[i] - trend[i] }
            let cycle = cycleSubseries(work, period: np, span: ns, jump: (ns + 9) / 10)
            var low = movingAverage(cycle, np)
            low = movingAverage(low, np)
            low = movingAverage(low, 3)
            low = Loess.smooth(low, span: nl, degree: 1, jump: (nl + 9) / 10)
            for i in 0..<n {
                seasonal[i] = cycle[np + i] - low[i]
                work[i] = y[i] - seasonal[i]
            }
            trend = Loess.smooth(work, span: nt, degree: 1, jump: (nt + 9) / 10)
        }
        return (seasonal, trend)
    }

    /// MSTL: STL once per season length (shortest first, those with at least two full
    /// seasons), iterated twice, with seasonal windows 11, 15, … as R's `mstl`.
    public static func mstl(_ y: [Double], periods: [Int]) -> Components {
        let usable = periods.filter { $0 > 1 && y.count > 2 * $0 }.sorted()
        var seasonal = [[Double]](repeating: [Double](repeating: 0, count: y.count), count: usable.count)
        var adjusted = y
        var trend = y
        guard !usable.isEmpty else { return Components(seasonal: [], trend: trend, adjusted: adjusted) }
        for _ in 0..<2 {
            for (i, p) in usable.enumerated() {
                for t in adjusted.indices { adjusted[t] += seasonal[i][t] }
                let fit = stl(adjusted, period: p, seasonalWindow: 7 + 4 * (i + 1))
                seasonal[i] = fit.seasonal
                trend = fit.trend
                for t in adjusted.indices { adjusted[t] -= seasonal[i][t] }
            }
        }
        // Report the components in the caller's order of periods.
        let ordered = periods.compactMap { p in usable.firstIndex(of: p).map { seasonal[$0] } }
        return Components(seasonal: ordered, trend: trend, adjusted: adjusted)
    }

    static func odd(_ k: Int) -> Int { k % 2 == 0 ? k + 1 : k }

    /// Smooths each cycle-subseries (positions j, j+np, …) with degree-0 loess and extends it
    /// one value at each end; the result has n + 2·np values.
    static func cycleSubseries(_ y: [Double], period np: Int, span: Int, jump: Int) -> [Double] {
        let n = y.count
        var out = [Double](repeating: 0, count: n + 2 * np)
        for j in 0..<np where j < n {
            let sub = Swift.stride(from: j, to: n, by: np).map { y[$0] }
            let k = sub.count
            let smooth = Loess.smooth(sub, span: span, degree: 0, jump: jump)
            let before = Loess.estimate(sub, span: span, degree: 0, at: 0, left: 1, right: min(span, k)) ?? smooth[0]
            let after = Loess.estimate(sub, span: span, degree: 0, at: Double(k + 1), left: max(1, k - span + 1), right: k) ?? smooth[k - 1]
            out[j] = before
            for (m, v) in smooth.enumerated() { out[j + (m + 1) * np] = v }
            if j + (k + 1) * np < out.count { out[j + (k + 1) * np] = after }
        }
        return out
    }

    /// Moving average of length `len` (n − len + 1 values).
    static func movingAverage(_ x: [Double], _ len: Int) -> [Double] {
        guard x.count >= len else { return x }
        var out = [Double](repeating: 0, count: x.count - len + 1)
        var sum = x[0..<len].reduce(0, +)
        out[0] = sum / Double(len)
        for i in 1..<out.count {
            sum += x[i + len - 1] - x[i - 1]
            out[i] = sum / Double(len)
        }
        return out
    }
}

/// Locally weighted regression with tricube weights, as STL's `ess`/`est`: computed every
/// `jump` points and linearly interpolated between them.
enum Loess {
    /// The smoothed values at positions 1…n.
    static func smooth(_ y: [Double], span: Int, degree: Int, jump: Int) -> [Double] {
        let n = y.count
        guard n > 2 else { return y }
        var out = [Double](repeating: 0, count: n)
        let step = max(1, min(jump, n - 1))
        let half = (span + 1) / 2
        func window(_ i: Int) -> (Int, Int) {
            if span >= n { return (1, n) }
            if i < half { return (1, span) }
            if i >= n - half + 1 { return (n - span + 1, n) }
            return (i - half + 1, span + i - half)
        }
        var i = 1
        while i <= n {
            let (l, r) = window(i)
            out[i - 1] = estimate(y, span: span, degree: degree, at: Double(i), left: l, right: r) ?? y[i - 1]
            i += step
        }
        if step > 1 {
            var k = 1
            while k + step <= n {
                let delta = (out[k + step - 1] - out[k - 1]) / Double(step)
                for j in (k + 1)..<(k + step) { out[j - 1] = out[k - 1] + delta * Double(j - k) }
                k += step
            }
            if k != n {
                let (l, r) = window(n)
                out[n - 1] = estimate(y, span: span, degree: degree, at: Double(n), left: l, right: r) ?? y[n - 1]
                if k != n - 1 {
                    let delta = (out[n - 1] - out[k - 1]) / Double(n - k)
                    for j in (k + 1)..<n { out[j - 1] = out[k - 1] + delta * Double(j - k) }
                }
            }
        }
        return out
    }

    /// The fitted value at position `x` from points left…right (1-based); nil when every weight is zero.
    static func estimate(_ y: [Double], span: Int, degree: Int, at x: Double, left: Int, right: Int) -> Double? {
        let n = y.count
        guard left >= 1, right <= n, left <= right else { return nil }
        var h = max(x - Double(left), Double(right) - x)
        if span > n { h += Double((span - n) / 2) }
        let h9 = 0.999 * h, h1 = 0.001 * h
        // Tricube weight of position j (recomputed per pass: no allocation per point).
        @inline(__always) func weight(_ j: Int) -> Double {
            let r = abs(Double(j) - x)
            guard r <= h9 else { return 0 }
            if r <= h1 { return 1 }
            let u = r / h, v = 1 - u * u * u
            return v * v * v
        }
        var total = 0.0, a = 0.0
        for j in left...right {
            let w = weight(j)
            total += w
            a += w * Double(j)
        }
        guard total > 0 else { return nil }
        a /= total
        var slope = 0.0
        if h > 0 && degree > 0 {
            var c = 0.0
            for j in left...right { c += weight(j) / total * (Double(j) - a) * (Double(j) - a) }
            if c.squareRoot() > 0.001 * Double(n - 1) { slope = (x - a) / c }
        }
        var value = 0.0
        for j in left...right { value += weight(j) / total * (slope * (Double(j) - a) + 1) * y[j - 1] }
        return value
    }
}

/// MSTL with a trend model: the series is decomposed for every season length; the seasonal
/// parts are forecast by repeating their last cycle and the adjusted series (trend plus
/// remainder) by AutoETS without a season, whose intervals the forecast keeps.
public struct MSTLModel: ForecastModel {
    /// Makes the model.
    public init() {}
    /// "mstl".
    public var name: String { "mstl" }

    /// Decomposes, forecasts the parts and adds them up.
    public func forecast(_ history: [Double], horizon: Int, seasons: [Int], levels: [Double]) -> Forecast {
        let y = Numeric.interpolated(history)
        let parts = Decomposition.mstl(y, periods: seasons)
        var f = AutoETSModel().forecast(parts.adjusted, horizon: horizon, seasons: [1], levels: levels)
        let usable = seasons.filter { $0 > 1 && y.count > 2 * $0 }
        for (p, seasonal) in zip(usable, parts.seasonal) {
            let n = seasonal.count
            for h in 0..<horizon {
                let s = seasonal[n - p + (h % p)]
                f.mean[h] += s
                for l in levels { f.quantiles[l]?[h] += s }
            }
        }
        f.method = "MSTL(\(usable.map(String.init).joined(separator: ","))) + \(f.method)"
        return f
    }
}
