import Foundation

/// Derivative-free minimisation by the Nelder–Mead simplex (reflection 1, expansion 2,
/// contraction ½, shrink ½), as R's `optim` and statsforecast use for ETS and Theta.
///
/// All working storage is allocated once per call; the objective is handed the same trial
/// array every time, so the inner loop allocates nothing.
struct NelderMead {
    /// The most objective evaluations.
    var maxEvaluations = 1000
    /// Stop when the simplex's values differ by less than this (relative).
    var tolerance = 1e-8

    /// Minimises `f` from `start`, with initial simplex steps `steps` per coordinate.
    /// - Returns: the best point and its value.
    func minimize(start: [Double], steps: [Double], _ f: ([Double]) -> Double) -> (x: [Double], value: Double) {
        let n = start.count
        guard n > 0 else { return (start, f(start)) }
        var simplex = [[Double]](repeating: start, count: n + 1)
        for i in 0..<n { simplex[i + 1][i] += steps[i] }
        var values = simplex.map(f)
        var evaluations = n + 1
        var centroid = [Double](repeating: 0, count: n)
        var reflected = start, expanded = start, contracted = start
        var order = Array(0...n)
        while evaluations < maxEvaluations {
            order.sort { values[$0] < values[$1] }
            let best = order[0], worst = order[n], second = order[n - 1]
            let spread = abs(values[worst] - values[best])
            if !(spread > tolerance * (abs(values[best]) + tolerance)) && values[worst].isFinite { break }
            for j in 0..<n { centroid[j] = 0 }
            for i in 0...n where i != worst { for j in 0..<n { centroid[j] += simplex[i][j] } }
            for j in 0..<n { centroid[j] /= Double(n) }
            for j in 0..<n { reflected[j] = centroid[j] + (centroid[j] - simplex[worst][j]) }
            let fr = f(reflected)
            evaluations += 1
            if fr < values[best] {
                for j in 0..<n { expanded[j] = centroid[j] + 2 * (centroid[j] - simplex[worst][j]) }
                let fe = f(expanded)
                evaluations += 1
                if fe < fr { simplex[worst] = expanded; values[worst] = fe } else { simplex[worst] = reflected; values[worst] = fr }
            } else if fr < values[second] {
                simplex[worst] = reflected
                values[worst] = fr
            } else {
                let outside = fr < values[worst]
                for j in 0..<n {
                    let toward = outside ? reflected[j] : simplex[worst][j]
                    contracted[j] = centroid[j] + 0.5 * (toward - centroid[j])
                }
                let fc = f(contracted)
                evaluations += 1
                if fc < min(fr, values[worst]) {
                    simplex[worst] = contracted
                    values[worst] = fc
                } else {
                    for i in 0...n where i != best {
                        for j in 0..<n { simplex[i][j] = simplex[best][j] + 0.5 * (simplex[i][j] - simplex[best][j]) }
                        values[i] = f(simplex[i])
                    }
                    evaluations += n
                }
            }
        }
        let best = values.indices.min { values[$0] < values[$1] }!
        return (simplex[best], values[best])
    }
}

/// A small, fast, seedable generator (SplitMix64) with standard normal draws, so simulated
/// intervals are the same on every run.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    private var spare: Double?

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A standard normal draw (Box–Muller, both values used).
    mutating func normal() -> Double {
        if let s = spare { spare = nil; return s }
        let u1 = (Double(next() >> 11) + 0.5) / 9_007_199_254_740_992
        let u2 = Double(next() >> 11) / 9_007_199_254_740_992
        let r = (-2 * log(u1)).squareRoot()
        spare = r * sin(2 * .pi * u2)
        return r * cos(2 * .pi * u2)
    }
}

/// Small numeric helpers shared by the models.
enum Numeric {
    /// The values with NaNs replaced by linear interpolation (ends by the nearest value).
    static func interpolated(_ x: [Double]) -> [Double] {
        guard x.contains(where: \.isNaN) else { return x }
        var out = x
        let known = x.indices.filter { !x[$0].isNaN }
        guard let first = known.first, let last = known.last else { return x.map { _ in 0 } }
        for i in 0..<first { out[i] = x[first] }
        for i in (last + 1)..<x.count { out[i] = x[last] }
        var prev = first
        for k in known.dropFirst() {
            if k > prev + 1 {
                for i in (prev + 1)..<k { out[i] = x[prev] + (x[k] - x[prev]) * Double(i - prev) / Double(k - prev) }
            }
            prev = k
        }
        return out
    }

    /// The mean; NaN for an empty slice.
    static func mean<C: Collection>(_ x: C) -> Double where C.Element == Double {
        x.isEmpty ? .nan : x.reduce(0, +) / Double(x.count)
    }

    /// Intercept and slope of the least-squares line through (1, x₀), (2, x₁), ….
    static func line<C: Collection>(_ x: C) -> (intercept: Double, slope: Double) where C.Element == Double {
        let n = Double(x.count)
        guard n > 1 else { return (x.first ?? 0, 0) }
        var st = 0.0, sy = 0.0, stt = 0.0, sty = 0.0
        for (i, v) in x.enumerated() {
            let t = Double(i + 1)
            st += t; sy += v; stt += t * t; sty += t * v
        }
        let slope = (n * sty - st * sy) / (n * stt - st * st)
        return ((sy - slope * st) / n, slope)
    }

    /// The `p` quantile of ascending `sorted` values (linear interpolation, R's type 7).
    static func quantile(sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let h = Double(sorted.count - 1) * p
        let lo = Int(h.rounded(.down)), hi = min(sorted.count - 1, lo + 1)
        return sorted[lo] + (h - Double(lo)) * (sorted[hi] - sorted[lo])
    }

    /// Autocorrelations at lags 1…`maxLag`.
    static func acf(_ x: [Double], maxLag: Int) -> [Double] {
        let n = x.count
        let mu = mean(x)
        var denom = 0.0
        for v in x { denom += (v - mu) * (v - mu) }
        guard denom > 0 else { return Array(repeating: 0, count: maxLag) }
        return (1...max(1, maxLag)).map { k in
            guard k < n else { return 0 }
            var s = 0.0
            for t in k..<n { s += (x[t] - mu) * (x[t - k] - mu) }
            return s / denom
        }
    }
}

extension Forecast {
    /// Quantiles from simulated sample paths: `paths[p][h]` is path p's value at step h.
    static func fromSamples(mean: [Double], paths: [[Double]], levels: [Double]) -> Forecast {
        var q: [Double: [Double]] = Dictionary(uniqueKeysWithValues: levels.map { ($0, [Double](repeating: 0, count: mean.count)) })
        var column = [Double](repeating: 0, count: paths.count)
        for h in mean.indices {
            for p in paths.indices { column[p] = paths[p][h] }
            column.sort()
            for l in levels { q[l]![h] = Numeric.quantile(sorted: column, l) }
        }
        return Forecast(mean: mean, quantiles: q).noncrossing()
    }
}
