import Foundation

/// One member of the exponential-smoothing state-space family (Hyndman et al., 2008):
/// additive or multiplicative error; no, additive or additive-damped trend; no, additive
/// or multiplicative season.
public struct ETSSpec: Hashable, Sendable, CustomStringConvertible {
    /// How a component enters the model.
    public enum Component: String, Sendable, Hashable {
        /// Absent.
        case none = "N"
        /// Added.
        case additive = "A"
        /// Multiplied.
        case multiplicative = "M"
    }

    /// The error: additive or multiplicative.
    public var error: Component
    /// The trend: none or additive.
    public var trend: Component
    /// Whether the trend is damped.
    public var damped: Bool
    /// The season: none, additive or multiplicative.
    public var season: Component

    /// Makes a spec.
    public init(error: Component, trend: Component, damped: Bool = false, season: Component) {
        self.error = error
        self.trend = trend
        self.damped = damped && trend != .none
        self.season = season
    }

    /// `ETS(M,Ad,N)` and the like.
    public var description: String {
        "ETS(\(error.rawValue),\(trend.rawValue)\(damped ? "d" : ""),\(season.rawValue))"
    }

    /// Every spec AutoETS considers for a series: multiplicative parts only for strictly
    /// positive data, seasonal ones only when `season` > 1, and never additive error with a
    /// multiplicative season (numerically unstable; R's `ets` excludes it too).
    public static func candidates(positive: Bool, seasonal: Bool) -> [ETSSpec] {
        var out: [ETSSpec] = []
        for error in positive ? [Component.additive, .multiplicative] : [.additive] {
            for (trend, damped) in [(Component.none, false), (.additive, false), (.additive, true)] {
                for season in seasonal ? (positive ? [Component.none, .additive, .multiplicative] : [.none, .additive]) : [.none] {
                    if error == .additive && season == .multiplicative { continue }
                    out.append(ETSSpec(error: error, trend: trend, damped: damped, season: season))
                }
            }
        }
        return out
    }
}

/// A fitted ETS model: parameters, final states and fit statistics.
public struct ETSFit: Sendable {
    /// The model.
    public var spec: ETSSpec
    /// Season length (1 without a season).
    public var period: Int
    /// Level smoothing.
    public var alpha: Double
    /// Trend smoothing (error-correction form: bₜ = φbₜ₋₁ + β·εₜ for additive error).
    public var beta: Double
    /// Season smoothing.
    public var gamma: Double
    /// Damping (1 when not damped).
    public var phi: Double
    /// Final level.
    public var level: Double
    /// Final slope.
    public var slope: Double
    /// Final seasonal states; `seasons[t % period]` belongs to time t.
    public var seasons: [Double]
    /// Observations fitted.
    public var count: Int
    /// Innovation variance (relative for multiplicative error).
    public var sigma2: Double
    /// −2 log-likelihood (Gaussian innovations, σ² concentrated out).
    public var minus2LogLikelihood: Double
    /// Free parameters, σ² included.
    public var parameterCount: Int

    /// Akaike's criterion, corrected for small samples.
    public var aicc: Double {
        let k = Double(parameterCount), n = Double(count)
        let aic = minus2LogLikelihood + 2 * k
        return n - k - 1 > 0 ? aic + 2 * k * (k + 1) / (n - k - 1) : .infinity
    }

    /// The point forecast h = 1…`horizon` steps ahead (the recursion without errors).
    public func pointForecast(horizon: Int) -> [Double] {
        var out = [Double](repeating: 0, count: horizon)
        var damp = 0.0, power = 1.0
        for h in 0..<horizon {
            power *= phi
            damp += power
            let trendPart = spec.trend == .none ? level : level + damp * slope
            let s = seasons.isEmpty ? 0 : seasons[(count + h) % period]
            switch spec.season {
            case .none: out[h] = trendPart
            case .additive: out[h] = trendPart + s
            case .multiplicative: out[h] = trendPart * s
            }
        }
        return out
    }

    /// A probabilistic forecast: analytic normal intervals for the linear (class 1) models,
    /// simulated sample paths for the others.
    public func forecast(horizon: Int, levels: [Double]) -> Forecast {
        let mean = pointForecast(horizon: horizon)
        let linear = spec.error == .additive && spec.season != .multiplicative
        if linear {
            // Var(h) = σ²(1 + Σ_{j<h} c_j²), c_j = α + β(φ + … + φ^j) + γ·[j ≡ 0 mod m].
            var sigma = [Double](repeating: 0, count: horizon)
            var sum = 1.0, damp = 0.0, power = 1.0
            for h in 0..<horizon {
                sigma[h] = (sigma2 * sum).squareRoot()
                let j = h + 1
                power *= phi
                damp += power
                var c = alpha
                if spec.trend != .none { c += beta * damp }
                if spec.season != .none && j % period == 0 { c += gamma }
                sum += c * c
            }
            var f = Forecast.normal(mean: mean, sigma: sigma, levels: levels)
            f.method = description
            return f
        }
        var rng = SplitMix64(seed: UInt64(count &* 7919 &+ horizon))
        let sd = sigma2.squareRoot()
        let paths = (0..<1000).map { _ in
            var state = ETSState(level: level, slope: slope, seasons: seasons, index: count % period)
            return (0..<horizon).map { _ in state.step(spec: spec, params: self, observation: nil, noise: sd * rng.normal()) }
        }
        var f = Forecast.fromSamples(mean: mean, paths: paths, levels: levels)
        f.method = description
        return f
    }

    /// The spec and its smoothing parameters, e.g. `ETS(A,Ad,N) α=0.52 β=0.11 φ=0.95`.
    public var description: String {
        var s = "\(spec) α=\(String(format: "%.3g", alpha))"
        if spec.trend != .none { s += " β=\(String(format: "%.3g", beta))" }
        if spec.damped { s += " φ=\(String(format: "%.3g", phi))" }
        if spec.season != .none { s += " γ=\(String(format: "%.3g", gamma)) m=\(period)" }
        return s
    }
}

/// The moving state of the recursion, used for simulation.
struct ETSState {
    var level: Double
    var slope: Double
    var seasons: [Double]
    var index: Int

    /// One step: the one-step forecast, the observation (given or simulated from `noise`),
    /// and the state update. Returns the observation.
    mutating func step(spec: ETSSpec, params p: ETSFit, observation: Double?, noise: Double) -> Double {
        let t = spec.trend == .none ? level : level + p.phi * slope
        let s = spec.season == .none ? 0 : seasons[index]
        let fitted = spec.season == .none ? t : spec.season == .additive ? t + s : t * s
        let y = observation ?? (spec.error == .additive ? fitted + noise : fitted * (1 + noise))
        let newSeason = ETS.update(spec: spec, alpha: p.alpha, beta: p.beta, gamma: p.gamma, phi: p.phi, y: y, trendPart: t,
                                   season: s, level: &level, slope: &slope)
        if !seasons.isEmpty {
            seasons[index] = newSeason
            index = (index + 1) % seasons.count
        }
        return y
    }
}

/// Fitting of ETS models by maximum likelihood.
public enum ETS {
    /// The state update after observing `y` (R's `etscalc` form: the same equations serve
    /// additive and multiplicative errors, written with the deseasonalised observation).
    /// - Returns: the updated seasonal state (`s` unchanged without a season).
    @inline(__always)
    static func update(spec: ETSSpec, alpha: Double, beta: Double, gamma: Double, phi: Double, y: Double, trendPart t: Double,
                       season s: Double, level: inout Double, slope: inout Double) -> Double {
        let q = spec.season == .none ? y : spec.season == .additive ? y - s : y / s
        let newLevel = t + alpha * (q - t)
        if spec.trend != .none { slope = phi * slope + (beta / alpha) * (newLevel - t) }
        level = newLevel
        switch spec.season {
        case .none: return s
        case .additive: return s + gamma * (y - t - s)
        case .multiplicative: return s + gamma * (y / t - s)
        }
    }

    /// Fits one spec; nil when the data cannot take it (too short, or no admissible fit).
    /// - Parameter period: the season length, used only by seasonal specs.
    public static func fit(_ y: [Double], spec: ETSSpec, period: Int, maxEvaluations: Int = 400) -> ETSFit? {
        let m = spec.season == .none ? 1 : period
        let n = y.count
        if spec.season != .none && (m < 2 || n < 2 * m) { return nil }
        if (spec.error == .multiplicative || spec.season == .multiplicative) && y.contains(where: { $0 <= 0 }) { return nil }
        let initial = initialStates(y, spec: spec, period: m)
        // Parameter vector: α, [β], [γ], [φ], ℓ₀, [b₀].
        var start = [0.1 + 0.2 * 0.9998 / Double(m)]
        var steps = [0.05]
        if spec.trend != .none { start.append(1e-4 + 0.1 * (start[0] - 1e-4)); steps.append(0.01) }
        if spec.season != .none { start.append(1e-4 + 0.05 * (1 - start[0] - 1e-4)); steps.append(0.01) }
        if spec.damped { start.append(0.97); steps.append(0.01) }
        start.append(initial.level)
        let scale = max(1e-8, Numeric.mean(y.prefix(max(10, 2 * m)).map(abs)))
        steps.append(0.1 * scale)
        if spec.trend != .none { start.append(initial.slope); steps.append(0.01 * scale) }
        // For season lengths up to 12 the first m − 1 seasonal states are searched too (the
        // last follows from the normalisation), as R's `ets` does; longer seasons keep the
        // decomposition's states so the search stays small.
        let searchSeasons = spec.season != .none && m <= 12
        let seasonStart = start.count
        if searchSeasons {
            for i in 0..<(m - 1) {
                start.append(initial.seasons[i])
                steps.append(spec.season == .multiplicative ? 0.02 : 0.1 * scale * 0.2)
            }
        }
        func fill(_ buffer: UnsafeMutableBufferPointer<Double>, from x: [Double]) {
            guard searchSeasons else {
                for i in buffer.indices { buffer[i] = initial.seasons[i] }
                return
            }
            var sum = 0.0
            for i in 0..<(m - 1) {
                buffer[i] = x[seasonStart + i]
                sum += buffer[i]
            }
            buffer[m - 1] = spec.season == .multiplicative ? Double(m) - sum : -sum
        }
        var seasons = initial.seasons
        let evaluate: ([Double]) -> Double = { x in
            seasons.withUnsafeMutableBufferPointer { buffer in
                fill(buffer, from: x)
                return likelihood(y, spec: spec, period: m, x: x, seasons: buffer).minus2LogLikelihood
            }
        }
        let optimizer = NelderMead(maxEvaluations: searchSeasons ? maxEvaluations + 150 * (m - 1) : maxEvaluations, tolerance: 1e-7)
        var (best, value) = optimizer.minimize(start: start, steps: steps, evaluate)
        if searchSeasons && value.isFinite {
            // One restart from the optimum: Nelder–Mead stalls easily in this many dimensions.
            (best, value) = optimizer.minimize(start: best, steps: steps.map { $0 * 0.5 }, evaluate)
        }
        guard value.isFinite else { return nil }
        var final = initial.seasons
        let result = final.withUnsafeMutableBufferPointer { buffer in
            fill(buffer, from: best)
            return likelihood(y, spec: spec, period: m, x: best, seasons: buffer)
        }
        let p = unpack(best, spec: spec)
        guard admissible(spec: spec, period: m, alpha: p.alpha, beta: p.beta, gamma: p.gamma, phi: p.phi) else { return nil }
        let k = best.count + (spec.season == .none || searchSeasons ? 0 : m - 1) + 1
        return ETSFit(spec: spec, period: m, alpha: p.alpha, beta: p.beta, gamma: p.gamma, phi: p.phi,
                      level: result.level, slope: result.slope, seasons: spec.season == .none ? [] : final, count: n,
                      sigma2: result.sse / Double(max(1, n - k)), minus2LogLikelihood: result.minus2LogLikelihood, parameterCount: k)
    }

    /// The fit with the smallest AICc over `specs` (default: every candidate for the data).
    public static func auto(_ y: [Double], period: Int, specs: [ETSSpec]? = nil) -> ETSFit? {
        let seasonal = period > 1 && period <= 24 && y.count >= 2 * period
        let candidates = specs ?? ETSSpec.candidates(positive: !y.contains { $0 <= 0 }, seasonal: seasonal)
        var best: ETSFit?
        for spec in candidates {
            guard let f = fit(y, spec: spec, period: period) else { continue }
            if best == nil || f.aicc < best!.aicc { best = f }
        }
        return best
    }

    /// Whether the parameters lie in the admissible (forecastable) region: the discount
    /// matrix D = F − g·w′ of the linear state-space form has no eigenvalue outside the unit
    /// circle (Hyndman et al., 2008, ch. 10). Checked by power iteration: ‖Dᵏx‖ must not grow.
    static func admissible(spec: ETSSpec, period m: Int, alpha: Double, beta: Double, gamma: Double, phi: Double) -> Bool {
        let seasonal = spec.season != .none
        let trend = spec.trend != .none
        // State x = (ℓ, b, s₁ … s_m), s_m the oldest seasonal state.
        let size = 2 + (seasonal ? m : 0)
        var x = (0..<size).map { Double($0 % 3) + 1 }
        var next = x
        var rng = SplitMix64(seed: 1)
        for i in x.indices { x[i] += 0.1 * rng.normal() }
        if !trend { x[1] = 0 }
        // Warm up 1,000 steps (transients of a non-normal D), then measure 2,000.
        let warmup = 1000, steps = 2000
        var logGrowth = 0.0
        for step in 0..<(warmup + steps) {
            // One-step forecast error for a zero observation: e = −w′x.
            let e = -(x[0] + (trend ? phi * x[1] : 0) + (seasonal ? x[size - 1] : 0))
            next[0] = x[0] + (trend ? phi * x[1] : 0) + alpha * e
            next[1] = trend ? phi * x[1] + beta * e : 0
            if seasonal {
                next[2] = x[size - 1] + gamma * e
                for j in 3..<size { next[j] = x[j - 1] }
            }
            var norm = 0.0
            for v in next { norm += v * v }
            norm = norm.squareRoot()
            guard norm.isFinite else { return false }
            if norm == 0 { return true }
            if step >= warmup { logGrowth += log(norm) }
            for i in x.indices { x[i] = next[i] / norm }
        }
        // The seasonal form always has a unit root (the level and the seasons can trade a
        // constant), and a repeated one grows only polynomially; growth by more than 0.1% per
        // step is explosive.
        return logGrowth / Double(steps) < 1e-3
    }

    struct Parameters { var alpha = 0.0, beta = 0.0, gamma = 0.0, phi = 1.0, level = 0.0, slope = 0.0 }

    @inline(__always)
    static func unpack(_ x: [Double], spec: ETSSpec) -> Parameters {
        var p = Parameters()
        var i = 0
        p.alpha = x[i]; i += 1
        if spec.trend != .none { p.beta = x[i]; i += 1 }
        if spec.season != .none { p.gamma = x[i]; i += 1 }
        if spec.damped { p.phi = x[i]; i += 1 }
        p.level = x[i]; i += 1
        if spec.trend != .none { p.slope = x[i] }
        return p
    }

    /// Runs the recursion over `y` from the states in `x` and `seasons` (updated in place).
    /// - Returns: −2 log L (infinite outside the parameter region: 1e-4 ≤ α ≤ 0.9999,
    ///   1e-4 ≤ β ≤ α, 1e-4 ≤ γ ≤ 1 − α, 0.8 ≤ φ ≤ 0.98; or where a multiplicative part
    ///   would divide by a non-positive state), the sum of squared innovations and the final states.
    static func likelihood(_ y: [Double], spec: ETSSpec, period m: Int, x: [Double], seasons: UnsafeMutableBufferPointer<Double>)
        -> (minus2LogLikelihood: Double, sse: Double, level: Double, slope: Double) {
        let p = unpack(x, spec: spec)
        let bad = (Double.infinity, Double.infinity, 0.0, 0.0)
        guard p.alpha >= 1e-4, p.alpha <= 0.9999 else { return bad }
        if spec.trend != .none { guard p.beta >= 1e-4, p.beta <= p.alpha else { return bad } }
        if spec.season != .none { guard p.gamma >= 1e-4, p.gamma <= 1 - p.alpha else { return bad } }
        if spec.damped { guard p.phi >= 0.8, p.phi <= 0.98 else { return bad } }
        let multiplicative = spec.error == .multiplicative || spec.season == .multiplicative
        var level = p.level, slope = p.slope
        var sse = 0.0, logSum = 0.0
        var product = 1.0, factors = 0
        var j = 0
        let seasonal = spec.season != .none
        for t in 0..<y.count {
            let trendPart = spec.trend == .none ? level : level + p.phi * slope
            let s = seasonal ? seasons[j] : 0
            let fitted = !seasonal ? trendPart : spec.season == .additive ? trendPart + s : trendPart * s
            if multiplicative && (fitted <= 0 || trendPart <= 0 || (spec.season == .multiplicative && s <= 0)) { return bad }
            let e: Double
            if spec.error == .additive {
                e = y[t] - fitted
            } else {
                e = (y[t] - fitted) / fitted
                // Σ log ŷ as the log of running products, 16 factors at a time (log is the
                // costliest call in this loop).
                product *= fitted
                factors += 1
                if factors == 16 || product > 1e150 || product < 1e-150 {
                    logSum += log(product)
                    product = 1
                    factors = 0
                }
            }
            sse += e * e
            let newSeason = update(spec: spec, alpha: p.alpha, beta: p.beta, gamma: p.gamma, phi: p.phi, y: y[t], trendPart: trendPart,
                                   season: s, level: &level, slope: &slope)
            if seasonal {
                seasons[j] = newSeason
                j += 1
                if j == m { j = 0 }
            }
        }
        logSum += log(product)
        let n = Double(y.count)
        guard sse.isFinite, logSum.isFinite, sse > 0 else { return sse == 0 ? (-1e12, 0, level, slope) : bad }
        let m2ll = n * log(sse / n) + n * (1 + log(2 * .pi)) + 2 * logSum
        return (m2ll, sse, level, slope)
    }

    /// Initial level, slope and seasonal states as R's `ets` makes them: a classical
    /// decomposition of the first three seasons (or of all the data when shorter) for the
    /// season, then a line through the first max(10, 2m) seasonally adjusted values.
    static func initialStates(_ y: [Double], spec: ETSSpec, period m: Int) -> (level: Double, slope: Double, seasons: [Double]) {
        var adjusted = y
        var seasons: [Double] = []
        if spec.season != .none {
            let multiplicative = spec.season == .multiplicative
            seasons = Decomposition.seasonalIndices(Array(y.prefix(max(2 * m, min(y.count, 3 * m)))), period: m, multiplicative: multiplicative)
            if multiplicative { seasons = seasons.map { max($0, 1e-2) } }
            for t in adjusted.indices { adjusted[t] = multiplicative ? y[t] / seasons[t % m] : y[t] - seasons[t % m] }
        }
        let k = min(max(10, 2 * m), adjusted.count)
        if spec.trend == .none { return (Numeric.mean(adjusted.prefix(k)), 0, seasons) }
        let (a, b) = Numeric.line(adjusted.prefix(k))
        // The line is through t = 1…k; the state before the first observation is at t = 0.
        var level = a, slope = b
        if abs(level + slope) < 1e-8 { level *= 1.001; slope *= 1.001 }
        if spec.error == .multiplicative && level <= 0 { level = max(1e-3, Numeric.mean(adjusted.prefix(k))); slope = 0 }
        return (level, slope, seasons)
    }
}

/// AutoETS: every admissible ETS spec for the series, fitted by maximum likelihood and
/// chosen by AICc; seasonal specs for season lengths 2…24 with at least two full seasons.
public struct AutoETSModel: ForecastModel {
    /// Restricts the search (nil: every candidate).
    public var specs: [ETSSpec]?
    /// Makes the model.
    public init(specs: [ETSSpec]? = nil) { self.specs = specs }
    /// "auto_ets".
    public var name: String { "auto_ets" }

    /// Fits and forecasts; falls back to the naive method when no spec fits.
    public func forecast(_ history: [Double], horizon: Int, seasons: [Int], levels: [Double]) -> Forecast {
        let y = Numeric.interpolated(history)
        guard y.count >= 4, let fit = ETS.auto(y, period: seasons.main, specs: specs) else {
            return NaiveModel().forecast(history, horizon: horizon, seasons: seasons, levels: levels)
        }
        var f = fit.forecast(horizon: horizon, levels: levels)
        f.method = fit.description
        return f
    }
}
