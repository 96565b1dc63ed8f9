import Foundation

/// Croston's method and its corrections for intermittent demand (many zeros): demand sizes
/// and the intervals between demands (or the demand probability) are smoothed separately.
///
/// Quantiles come from the compound distribution the method assumes: no demand with
/// probability 1 − d, otherwise a size drawn from the observed non-zero demands, where d is
/// the smoothed probability (TSB) or 1 / the smoothed interval (Croston, SBA).
public struct IntermittentModel: ForecastModel {
    /// Which method.
    public enum Method: String, Sendable, CaseIterable {
        /// Croston (1972): size / interval.
        case croston
        /// Syntetos–Boylan approximation: Croston × (1 − α/2), removing its bias.
        case sba
        /// Teunter–Syntetos–Babai (2011): probability × size, the probability updated every period.
        case tsb
    }

    /// The method.
    public var method: Method
    /// Smoothing of the sizes (and intervals).
    public var alpha: Double
    /// Smoothing of the demand probability (TSB).
    public var beta: Double

    /// Makes the model; 0.1 is the customary smoothing for both.
    public init(_ method: Method, alpha: Double = 0.1, beta: Double = 0.1) {
        self.method = method
        self.alpha = alpha
        self.beta = beta
    }

    /// The method's name.
    public var name: String { method.rawValue }

    /// Smooths and forecasts a flat rate.
    public func forecast(_ history: [Double], horizon: Int, seasons: [Int], levels: [Double]) -> Forecast {
        let y = Numeric.interpolated(history)
        let demands = y.indices.filter { y[$0] != 0 }
        guard let first = demands.first else {
            let zero = [Double](repeating: 0, count: horizon)
            return Forecast(mean: zero, quantiles: Dictionary(uniqueKeysWithValues: levels.map { ($0, zero) }), method: name)
        }
        var size = y[first], interval = Double(first + 1), probability = 1.0
        var last = first
        for t in (first + 1)..<max(first + 1, y.count) {
            if method == .tsb { probability += beta * ((y[t] != 0 ? 1 : 0) - probability) }
            guard y[t] != 0 else { continue }
            size += alpha * (y[t] - size)
            interval += alpha * (Double(t - last) - interval)
            last = t
        }
        let rate: Double, chance: Double
        switch method {
        case .croston: rate = size / interval; chance = min(1, 1 / interval)
        case .sba: rate = (1 - alpha / 2) * size / interval; chance = min(1, 1 / interval)
        case .tsb: rate = probability * size; chance = probability
        }
        let sizes = demands.suffix(100).map { y[$0] }.sorted()
        var q: [Double: [Double]] = [:]
        for l in levels {
            // P(Y ≤ v) = (1 − d) + d·F(v): zero below 1 − d, then the sizes' quantiles.
            let v = l <= 1 - chance ? 0 : Numeric.quantile(sorted: sizes, (l - (1 - chance)) / chance)
            q[l] = [Double](repeating: min(0, sizes.first!) < 0 ? v : max(0, v), count: horizon)
        }
        return Forecast(mean: [Double](repeating: rate, count: horizon), quantiles: q, method: name).noncrossing()
    }

    /// Whether a series looks intermittent: at least 30% zeros.
    public static func isIntermittent(_ y: [Double]) -> Bool {
        let known = y.filter { !$0.isNaN }
        return !known.isEmpty && Double(known.filter { $0 == 0 }.count) >= 0.3 * Double(known.count)
    }
}

/// Amazon Forecast's non-parametric time series method (NPTS): each future value is drawn
/// from the past, with weights that decay exponentially with distance, and the draw is
/// appended to the history before the next step. The seasonal form draws only from the
/// same position in the season, weighting by how many seasons back.
public struct NPTSModel: ForecastModel {
    /// Draw only from the same season position.
    public var seasonal: Bool
    /// The kernel's decay per step (per season when seasonal).
    public var decay: Double
    /// Sample paths.
    public var paths: Int

    /// Makes the model.
    public init(seasonal: Bool = true, decay: Double = 0.1, paths: Int = 200) {
        self.seasonal = seasonal
        self.decay = decay
        self.paths = paths
    }

    /// "npts".
    public var name: String { "npts" }

    /// Samples the paths; the mean is their average.
    public func forecast(_ history: [Double], horizon: Int, seasons: [Int], levels: [Double]) -> Forecast {
        let base = Numeric.interpolated(history)
        guard !base.isEmpty else { return NaiveModel().forecast(history, horizon: horizon, seasons: seasons, levels: levels) }
        let m = seasonal && base.count >= 2 * seasons.main ? seasons.main : 1
        // Kernel weights by lag in steps of m, truncated where they fall below 1e-6.
        let maxLags = min(base.count / m, max(1, Int((log(1e6) / decay).rounded(.up))))
        var cumulative = [Double](repeating: 0, count: maxLags)
        var total = 0.0
        for k in 0..<maxLags {
            total += exp(-decay * Double(k))
            cumulative[k] = total
        }
        var rng = SplitMix64(seed: UInt64(base.count &* 31 &+ horizon))
        var mean = [Double](repeating: 0, count: horizon)
        var all: [[Double]] = []
        all.reserveCapacity(paths)
        var path = base
        for _ in 0..<paths {
            path.removeSubrange(base.count...)
            for h in 0..<horizon {
                let t = path.count
                let available = min(maxLags, t / m)
                let u = Double(rng.next() >> 11) / 9_007_199_254_740_992 * cumulative[max(0, available - 1)]
                var k = 0
                while k < available - 1 && cumulative[k] < u { k += 1 }
                let v = path[t - m * (k + 1)]
                path.append(v)
                mean[h] += v / Double(paths)
            }
            all.append(Array(path[base.count...]))
        }
        var f = Forecast.fromSamples(mean: mean, paths: all, levels: levels)
        f.method = seasonal && m > 1 ? "npts seasonal m=\(m)" : "npts"
        return f
    }
}
