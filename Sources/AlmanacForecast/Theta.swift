import Foundation

/// The Theta method's state-space forms (Fiorucci, Pellegrini, Louzada, Petropoulos &
/// Koehler, 2016): standard (θ = 2), optimised θ, and their dynamic versions whose trend
/// line is refitted at every step.
///
/// A seasonal series (by the 90% autocorrelation test at the season length) is first
/// divided by its classical multiplicative seasonal figure (subtracted when the data are not
/// all positive); the forecast is re-seasonalised at the end.
public struct ThetaModel: ForecastModel {
    /// Which variant.
    public enum Variant: String, Sendable, CaseIterable {
        /// Standard theta model: θ = 2, α and ℓ₀ fitted.
        case standard = "theta"
        /// Optimised theta model: θ fitted too.
        case optimized = "optimized_theta"
        /// Dynamic standard theta model.
        case dynamicStandard = "dynamic_theta"
        /// Dynamic optimised theta model.
        case dynamicOptimized = "dynamic_optimized_theta"
    }

    /// The variant.
    public var variant: Variant
    /// Makes the model.
    public init(_ variant: Variant = .standard) { self.variant = variant }
    /// The variant's name.
    public var name: String { variant.rawValue }

    var dynamic: Bool { variant == .dynamicStandard || variant == .dynamicOptimized }
    var optimizesTheta: Bool { variant == .optimized || variant == .dynamicOptimized }

    /// Fits and forecasts.
    public func forecast(_ history: [Double], horizon: Int, seasons: [Int], levels: [Double]) -> Forecast {
        var y = Numeric.interpolated(history)
        guard y.count >= 3 else { return NaiveModel().forecast(history, horizon: horizon, seasons: seasons, levels: levels) }
        let m = seasons.main
        let seasonal = Decomposition.isSeasonal(y, period: m)
        let multiplicative = !y.contains { $0 <= 0 }
        var figure: [Double] = []
        if seasonal {
            figure = Decomposition.seasonalIndices(y, period: m, multiplicative: multiplicative)
            for t in y.indices { y[t] = multiplicative ? y[t] / figure[t % m] : y[t] - figure[t % m] }
        }
        let fit = fitParameters(y)
        var f = simulate(y, fit: fit, horizon: horizon, levels: levels)
        if seasonal {
            let n = y.count
            for h in 0..<horizon {
                let s = figure[(n + h) % m]
                f.mean[h] = multiplicative ? f.mean[h] * s : f.mean[h] + s
                for l in levels { f.quantiles[l]![h] = multiplicative ? f.quantiles[l]![h] * s : f.quantiles[l]![h] + s }
            }
        }
        f.method = "\(variant.rawValue) α=\(String(format: "%.3g", fit.alpha)) θ=\(String(format: "%.3g", fit.theta))" + (seasonal ? " deseasonalised m=\(m)" : "")
        return f.noncrossing()
    }

    struct Fit { var level0: Double, alpha: Double, theta: Double }

    /// Fits ℓ₀, α (0.1…0.99) and, for the optimised variants, θ ≥ 1 by least squares.
    func fitParameters(_ y: [Double]) -> Fit {
        let scale = max(1e-8, Numeric.mean(y.map(abs)))
        var start = [y[0] / 2, 0.5]
        var steps = [0.1 * scale, 0.1]
        if optimizesTheta { start.append(2); steps.append(0.5) }
        let lineFit = Numeric.line(y)
        let skip = dynamic ? 2 : 0
        let objective: ([Double]) -> Double = { x in
            guard x[1] >= 0.1, x[1] <= 0.99 else { return .infinity }
            let theta = optimizesTheta ? x[2] : 2
            guard theta >= 1 else { return .infinity }
            var sse = 0.0
            run(y, level0: x[0], alpha: x[1], theta: theta, line: lineFit) { t, fitted in
                if t >= skip { let e = (y[t] - fitted) / scale; sse += e * e }
            }
            return sse
        }
        let (best, _) = NelderMead(maxEvaluations: 500, tolerance: 1e-8).minimize(start: start, steps: steps, objective)
        return Fit(level0: best[0], alpha: min(0.99, max(0.1, best[1])), theta: optimizesTheta ? max(1, best[2]) : 2)
    }

    /// The model's recursion over `y`; calls `visit(t, μ_t)` with each one-step forecast.
    /// - Returns: the final state, to continue from.
    @discardableResult
    func run(_ y: [Double], level0: Double, alpha: Double, theta: Double, line: (intercept: Double, slope: Double),
             visit: (Int, Double) -> Void) -> ThetaState {
        var state = ThetaState(alpha: alpha, theta: theta, dynamic: dynamic, line: line, level0: level0, first: y[0])
        visit(0, state.firstForecast)
        state.observeFirst(y[0])
        for t in 1..<y.count {
            visit(t, state.nextForecast())
            state.observe(y[t])
        }
        return state
    }

    /// Point forecast from the recursion without noise; intervals from 500 simulated paths
    /// with the in-sample residuals' standard deviation.
    func simulate(_ y: [Double], fit: Fit, horizon: Int, levels: [Double]) -> Forecast {
        let lineFit = Numeric.line(y)
        var sq = 0.0, count = 0
        let final = run(y, level0: fit.level0, alpha: fit.alpha, theta: fit.theta, line: lineFit) { t, fitted in
            if t >= 2 { sq += (y[t] - fitted) * (y[t] - fitted); count += 1 }
        }
        let sd = count > 1 ? (sq / Double(count - 1)).squareRoot() : 0
        var point = final
        let mean = (0..<horizon).map { _ in
            let v = point.nextForecast()
            point.observe(v)
            return v
        }
        var rng = SplitMix64(seed: UInt64(y.count &* 104_729 &+ horizon))
        let paths = (0..<500).map { _ in
            var s = final
            return (0..<horizon).map { _ in
                let v = s.nextForecast() + sd * rng.normal()
                s.observe(v)
                return v
            }
        }
        return Forecast.fromSamples(mean: mean, paths: paths, levels: levels)
    }
}

/// The theta recursion's state after t observations (Fiorucci et al., 2016, eq. 3–5).
struct ThetaState {
    let alpha: Double
    let theta: Double
    let dynamic: Bool
    var level: Double
    var meanY: Double = 0
    var a: Double
    var b: Double
    /// Observations seen.
    var t = 0
    /// (1 − α)^t, kept as a running product (no `pow` per step).
    var decay = 1.0
    let firstForecast: Double

    init(alpha: Double, theta: Double, dynamic: Bool, line: (intercept: Double, slope: Double), level0: Double, first: Double) {
        self.alpha = alpha
        self.theta = theta
        self.dynamic = dynamic
        level = level0
        if dynamic {
            a = first
            b = 0
            firstForecast = first
        } else {
            a = line.intercept
            b = line.slope
            firstForecast = level0 + (1 - 1 / theta) * (line.intercept + line.slope)
        }
    }

    mutating func observeFirst(_ y: Double) {
        level = alpha * y + (1 - alpha) * level
        meanY = y
        t = 1
        decay = 1 - alpha
    }

    /// μ_{t+1} = ℓ_t + (1 − 1/θ)·(A_t(1−α)^t + B_t(1 − (1−α)^{t+1})/α).
    func nextForecast() -> Double {
        return level + (1 - 1 / theta) * (a * decay + b * (1 - decay * (1 - alpha)) / alpha)
    }

    mutating func observe(_ y: Double) {
        let i = Double(t)
        level = alpha * y + (1 - alpha) * level
        let previousMean = meanY
        meanY = (i * meanY + y) / (i + 1)
        if dynamic {
            b = ((i - 1) * b + 6 * (y - previousMean) / (i + 1)) / (i + 2)
            a = meanY - b * (i + 2) / 2
        }
        t += 1
        decay *= 1 - alpha
    }
}
