import Foundation

/// A seasonal ARIMA(p,d,q)(P,D,Q)m order, with or without a constant (a mean when undifferenced,
/// a drift after one difference).
public struct ARIMAOrder: Hashable, Sendable, CustomStringConvertible {
    /// Non-seasonal AR, differencing and MA orders.
    public var p: Int, d: Int, q: Int
    /// Seasonal AR, differencing and MA orders.
    public var P: Int, D: Int, Q: Int
    /// The season length (1: none).
    public var m: Int
    /// Whether a constant is estimated.
    public var constant: Bool

    /// Makes an order.
    public init(p: Int, d: Int, q: Int, P: Int = 0, D: Int = 0, Q: Int = 0, m: Int = 1, constant: Bool = false) {
        (self.p, self.d, self.q, self.P, self.D, self.Q, self.m, self.constant) = (p, d, q, P, D, Q, m, constant)
    }

    /// `ARIMA(1,1,1)(0,1,1)[12] with drift` and the like.
    public var description: String {
        var s = "ARIMA(\(p),\(d),\(q))"
        if m > 1 && P + D + Q > 0 { s += "(\(P),\(D),\(Q))[\(m)]" }
        if constant { s += d + D == 0 ? " with mean" : " with drift" }
        return s
    }

    /// Free parameters, the innovation variance included.
    var parameterCount: Int { p + q + P + Q + (constant ? 1 : 0) + 1 }
}

/// A fitted ARIMA model.
public struct ARIMAFit: Sendable {
    /// The order.
    public var order: ARIMAOrder
    /// AR coefficients (yₜ = Σ φᵢ yₜ₋ᵢ + …).
    public var phi: [Double]
    /// MA coefficients (… + εₜ + Σ θᵢ εₜ₋ᵢ).
    public var theta: [Double]
    /// Seasonal AR coefficients.
    public var seasonalPhi: [Double]
    /// Seasonal MA coefficients.
    public var seasonalTheta: [Double]
    /// The constant of the differenced series.
    public var mean: Double
    /// Innovation variance.
    public var sigma2: Double
    /// Corrected AIC of the conditional (CSS) likelihood.
    public var aicc: Double
    var series: [Double]
    var differenced: [Double]
    var residuals: [Double]

    /// The point forecast and normal intervals from the ψ-weights of the whole model
    /// (differencing included).
    public func forecast(horizon: Int, levels: [Double]) -> Forecast {
        let (ar, ma) = ARIMA.expand(phi: phi, theta: theta, seasonalPhi: seasonalPhi, seasonalTheta: seasonalTheta, m: order.m)
        var w = differenced, e = residuals
        for _ in 0..<horizon {
            let t = w.count
            var v = mean
            for (lag, c) in ar where t - lag >= 0 { v += c * (w[t - lag] - mean) }
            for (lag, c) in ma where t - lag >= 0 { v += c * e[t - lag] }
            w.append(v)
            e.append(0)
        }
        let future = ARIMA.integrate(Array(w.suffix(horizon)), series: series, d: order.d, D: order.D, m: order.m)
        // ψ-weights of (AR × differencing)(B)·yₜ = MA(B)·εₜ.
        var full = [Double](repeating: 0, count: 1)  // 1 − Σ c_k B^k as coefficients c_k (index = lag)
        for (lag, c) in ar {
            if full.count <= lag { full += [Double](repeating: 0, count: lag + 1 - full.count) }
            full[lag] += c
        }
        var poly = [1.0] + full.dropFirst().map { -$0 }  // AR polynomial a(B)
        for _ in 0..<order.d { poly = ARIMA.multiply(poly, [1, -1]) }
        for _ in 0..<order.D { poly = ARIMA.multiply(poly, [1] + [Double](repeating: 0, count: order.m - 1) + [-1]) }
        var maCoefficients = [Double](repeating: 0, count: horizon)
        for (lag, c) in ma where lag < horizon { maCoefficients[lag] += c }
        var psi = [Double](repeating: 0, count: horizon)
        psi[0] = 1
        for j in stride(from: 1, to: horizon, by: 1) {
            var v = maCoefficients[j]
            for k in 1...j where k < poly.count { v -= poly[k] * psi[j - k] }
            psi[j] = v
        }
        var sum = 0.0
        let sigma = psi.map { w -> Double in
            sum += w * w
            return (sigma2 * sum).squareRoot()
        }
        var f = Forecast.normal(mean: future, sigma: sigma, levels: levels)
        f.method = order.description
        return f
    }
}

/// Fitting and automatic order selection of seasonal ARIMA models (Hyndman & Khandakar, 2008).
public enum ARIMA {
    /// Largest orders the stepwise search visits.
    static let maxP = 5, maxQ = 5, maxSeasonalP = 2, maxSeasonalQ = 2, maxOrder = 5

    /// Fits an order by conditional sum of squares; nil when it cannot be fitted.
    /// - Parameter condition: how many leading differenced values only condition the sum
    ///   (default: the largest AR lag); a search passes one value so all its models are
    ///   scored on the same observations.
    public static func fit(_ y: [Double], order: ARIMAOrder, condition: Int? = nil) -> ARIMAFit? {
        let w = differences(y, d: order.d, D: order.D, m: order.m)
        let start = condition ?? (order.p + order.P * order.m)
        guard w.count - start > order.parameterCount + 2 else { return nil }
        let wMean = Numeric.mean(w)
        var sd = 0.0
        for v in w { sd += (v - wMean) * (v - wMean) }
        sd = max(1e-8, (sd / Double(w.count)).squareRoot())
        let k = order.p + order.q + order.P + order.Q
        var x0 = [Double](repeating: 0, count: k)
        var steps = [Double](repeating: 0.2, count: k)
        if order.constant { x0.append(wMean); steps.append(0.1 * sd) }
        var residuals = [Double](repeating: 0, count: w.count)
        let objective: ([Double]) -> Double = { x in
            let c = coefficients(x, order: order)
            return css(w, order: order, coefficients: c, start: start, residuals: &residuals)
        }
        let (best, value) = k == 0 && !order.constant ? (x0, objective(x0))
            : NelderMead(maxEvaluations: 100 + 50 * x0.count, tolerance: 1e-6).minimize(start: x0, steps: steps, objective)
        guard value.isFinite, value > 0 || k == 0 else { return nil }
        let c = coefficients(best, order: order)
        let sse = css(w, order: order, coefficients: c, start: start, residuals: &residuals)
        let n = Double(w.count - start)
        let sigma2 = max(sse / n, 1e-300)
        let m2ll = n * (log(2 * .pi * sigma2) + 1)
        let kk = Double(order.parameterCount)
        let aicc = n - kk - 1 > 0 ? m2ll + 2 * kk + 2 * kk * (kk + 1) / (n - kk - 1) : .infinity
        return ARIMAFit(order: order, phi: c.phi, theta: c.theta, seasonalPhi: c.seasonalPhi, seasonalTheta: c.seasonalTheta,
                        mean: c.mean, sigma2: sse / max(1, n - kk + 1), aicc: aicc, series: y, differenced: w, residuals: residuals)
    }

    /// AutoARIMA: d by repeated KPSS tests (5%), D by the seasonal strength of an STL
    /// decomposition (> 0.64), then the stepwise search over p, q, P, Q and the constant by AICc.
    public static func auto(_ y: [Double], period: Int) -> ARIMAFit? {
        var m = period
        let D = m > 1 && y.count >= 3 * m && seasonalStrength(y, period: m) > 0.64 ? 1 : 0
        if m > 1 && y.count < 3 * m + 3 { m = 1 }
        var d = 0
        var x = differences(y, d: 0, D: D, m: m)
        while d < 2 && x.count > 10 && kpssStatistic(x) > 0.463 {
            d += 1
            x = differences(x, d: 1, D: 0, m: 1)
        }
        let seasonal = m > 1 && x.count >= 3 * m
        let condition = (seasonal ? maxSeasonalP * m : 0) + maxP
        guard x.count - condition > 10 else {
            return fit(y, order: ARIMAOrder(p: 0, d: d, q: 0, P: 0, D: D, Q: 0, m: m, constant: d + D <= 1))
        }
        let allowConstant = d + D <= 1
        var cache: [ARIMAOrder: ARIMAFit?] = [:]
        func score(_ o: ARIMAOrder) -> (ARIMAFit?, Double) {
            if let hit = cache[o] { return (hit, hit?.aicc ?? .infinity) }
            let f = fit(y, order: o, condition: condition)
            cache[o] = f
            return (f, f?.aicc ?? .infinity)
        }
        func valid(_ o: ARIMAOrder) -> Bool {
            o.p >= 0 && o.q >= 0 && o.P >= 0 && o.Q >= 0 && o.p <= maxP && o.q <= maxQ && o.P <= maxSeasonalP && o.Q <= maxSeasonalQ
                && o.p + o.q + o.P + o.Q <= maxOrder && (seasonal || (o.P == 0 && o.Q == 0)) && (allowConstant || !o.constant)
        }
        let sm = seasonal ? m : 1
        let starts = [
            ARIMAOrder(p: 2, d: d, q: 2, P: seasonal ? 1 : 0, D: D, Q: seasonal ? 1 : 0, m: sm, constant: allowConstant),
            ARIMAOrder(p: 0, d: d, q: 0, P: 0, D: D, Q: 0, m: sm, constant: allowConstant),
            ARIMAOrder(p: 1, d: d, q: 0, P: seasonal ? 1 : 0, D: D, Q: 0, m: sm, constant: allowConstant),
            ARIMAOrder(p: 0, d: d, q: 1, P: 0, D: D, Q: seasonal ? 1 : 0, m: sm, constant: allowConstant),
        ].filter(valid)
        var best: ARIMAFit?
        var bestScore = Double.infinity
        for o in starts {
            let (f, s) = score(o)
            if s < bestScore { best = f; bestScore = s }
        }
        guard var current = best?.order else { return nil }
        var improved = true
        var visits = 0
        while improved && visits < 94 {
            improved = false
            var neighbours: [ARIMAOrder] = []
            for (dp, dq, dP, dQ) in [(1, 0, 0, 0), (-1, 0, 0, 0), (0, 1, 0, 0), (0, -1, 0, 0), (1, 1, 0, 0), (-1, -1, 0, 0),
                                     (0, 0, 1, 0), (0, 0, -1, 0), (0, 0, 0, 1), (0, 0, 0, -1), (0, 0, 1, 1), (0, 0, -1, -1)] {
                var o = current
                o.p += dp; o.q += dq; o.P += dP; o.Q += dQ
                neighbours.append(o)
            }
            var toggled = current
            toggled.constant.toggle()
            neighbours.append(toggled)
            for o in neighbours where valid(o) && cache[o] == nil {
                visits += 1
                let (f, s) = score(o)
                if s < bestScore {
                    best = f
                    bestScore = s
                    current = o
                    improved = true
                    break
                }
            }
        }
        return best
    }

    struct Coefficients {
        var phi: [Double], theta: [Double], seasonalPhi: [Double], seasonalTheta: [Double], mean: Double
    }

    /// Unconstrained search values → stationary and invertible coefficients, through partial
    /// autocorrelations tanh(u) and the Durbin–Levinson recursion (as R's `arima` transforms).
    static func coefficients(_ x: [Double], order o: ARIMAOrder) -> Coefficients {
        var i = 0
        func take(_ n: Int, ma: Bool) -> [Double] {
            defer { i += n }
            let a = levinson(x[i..<(i + n)].map { tanh($0) })
            return ma ? a.map { -$0 } : a
        }
        let phi = take(o.p, ma: false), theta = take(o.q, ma: true)
        let sphi = take(o.P, ma: false), stheta = take(o.Q, ma: true)
        return Coefficients(phi: phi, theta: theta, seasonalPhi: sphi, seasonalTheta: stheta, mean: o.constant ? x[i] : 0)
    }

    /// AR coefficients from partial autocorrelations (all inside (−1, 1) ⇒ stationary).
    static func levinson(_ r: [Double]) -> [Double] {
        var a: [Double] = []
        for (k, rk) in r.enumerated() {
            var next = a
            for j in 0..<k { next[j] = a[j] - rk * a[k - 1 - j] }
            next.append(rk)
            a = next
        }
        return a
    }

    /// The product of the non-seasonal and seasonal polynomials as (lag, coefficient) lists:
    /// wₜ = Σ ar·wₜ₋ₗ + εₜ + Σ ma·εₜ₋ₗ.
    static func expand(phi: [Double], theta: [Double], seasonalPhi: [Double], seasonalTheta: [Double], m: Int)
        -> (ar: [(Int, Double)], ma: [(Int, Double)]) {
        var ar: [Int: Double] = [:], ma: [Int: Double] = [:]
        for (i, a) in phi.enumerated() { ar[i + 1, default: 0] += a }
        for (j, s) in seasonalPhi.enumerated() {
            ar[(j + 1) * m, default: 0] += s
            for (i, a) in phi.enumerated() { ar[i + 1 + (j + 1) * m, default: 0] -= a * s }
        }
        for (i, t) in theta.enumerated() { ma[i + 1, default: 0] += t }
        for (j, s) in seasonalTheta.enumerated() {
            ma[(j + 1) * m, default: 0] += s
            for (i, t) in theta.enumerated() { ma[i + 1 + (j + 1) * m, default: 0] += t * s }
        }
        return (ar.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, ma.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    /// The conditional sum of squares from `start` on; fills `residuals`.
    static func css(_ w: [Double], order: ARIMAOrder, coefficients c: Coefficients, start: Int, residuals e: inout [Double]) -> Double {
        let (ar, ma) = expand(phi: c.phi, theta: c.theta, seasonalPhi: c.seasonalPhi, seasonalTheta: c.seasonalTheta, m: order.m)
        var sse = 0.0
        for t in 0..<w.count {
            guard t >= start else { e[t] = 0; continue }
            var v = w[t] - c.mean
            for (lag, a) in ar { v -= a * (w[t - lag] - c.mean) }
            for (lag, b) in ma where t - lag >= 0 { v -= b * e[t - lag] }
            e[t] = v
            sse += v * v
        }
        return sse.isFinite ? sse : .infinity
    }

    /// `D` seasonal differences at lag m, then `d` ordinary ones.
    static func differences(_ y: [Double], d: Int, D: Int, m: Int) -> [Double] {
        var x = y
        for _ in 0..<D where x.count > m { x = (m..<x.count).map { x[$0] - x[$0 - m] } }
        for _ in 0..<d where x.count > 1 { x = (1..<x.count).map { x[$0] - x[$0 - 1] } }
        return x
    }

    /// Undoes `differences` for forecasts of the differenced series.
    static func integrate(_ future: [Double], series y: [Double], d: Int, D: Int, m: Int) -> [Double] {
        // The intermediate series: y, after each seasonal difference, after each ordinary one.
        var stages = [y]
        for _ in 0..<D { stages.append(differences(stages.last!, d: 0, D: 1, m: m)) }
        for _ in 0..<d { stages.append(differences(stages.last!, d: 1, D: 0, m: 1)) }
        var f = future
        for level in stride(from: stages.count - 1, to: 0, by: -1) {
            let lag = level > D ? 1 : m
            var past = stages[level - 1]
            for h in f.indices {
                let v = f[h] + past[past.count - lag]
                past.append(v)
                f[h] = v
            }
        }
        return f
    }

    /// (1 + …)(1 + …) as coefficient lists by ascending power.
    static func multiply(_ a: [Double], _ b: [Double]) -> [Double] {
        var out = [Double](repeating: 0, count: a.count + b.count - 1)
        for (i, x) in a.enumerated() { for (j, y) in b.enumerated() { out[i + j] += x * y } }
        return out
    }

    /// The KPSS level-stationarity statistic with Bartlett weights and lag ⌊4(n/100)^¼⌋ (R's
    /// `ndiffs` default); above 0.463 the 5% test says "difference".
    static func kpssStatistic(_ x: [Double]) -> Double {
        let n = x.count
        let mu = Numeric.mean(x)
        var s = 0.0, eta = 0.0, gamma0 = 0.0
        for v in x {
            let e = v - mu
            s += e
            eta += s * s
            gamma0 += e * e
        }
        let lags = Int(4 * pow(Double(n) / 100, 0.25))
        var longRun = gamma0 / Double(n)
        if lags > 0 {
            for l in 1...lags {
                var g = 0.0
                for t in l..<n { g += (x[t] - mu) * (x[t - l] - mu) }
                longRun += 2 * (1 - Double(l) / Double(lags + 1)) * g / Double(n)
            }
        }
        guard longRun > 0 else { return 0 }
        return eta / (Double(n) * Double(n) * longRun)
    }

    /// The strength of the season: 1 − Var(remainder) / Var(season + remainder), from STL.
    static func seasonalStrength(_ y: [Double], period m: Int) -> Double {
        let (seasonal, trend) = Decomposition.stl(y, period: m, seasonalWindow: 11)
        var r = [Double](repeating: 0, count: y.count), sr = r
        for t in y.indices {
            r[t] = y[t] - seasonal[t] - trend[t]
            sr[t] = r[t] + seasonal[t]
        }
        func variance(_ v: [Double]) -> Double {
            let mu = Numeric.mean(v)
            return v.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(max(1, v.count - 1))
        }
        let total = variance(sr)
        return total > 0 ? max(0, 1 - variance(r) / total) : 0
    }
}

/// AutoARIMA as a forecasting model; falls back to the naive method when nothing fits.
public struct AutoARIMAModel: ForecastModel {
    /// Makes the model.
    public init() {}
    /// "auto_arima".
    public var name: String { "auto_arima" }

    /// Selects, fits and forecasts.
    public func forecast(_ history: [Double], horizon: Int, seasons: [Int], levels: [Double]) -> Forecast {
        let y = Numeric.interpolated(history)
        guard y.count >= 8, let fit = ARIMA.auto(y, period: seasons.main) else {
            return NaiveModel().forecast(history, horizon: horizon, seasons: seasons, levels: levels)
        }
        return fit.forecast(horizon: horizon, levels: levels)
    }
}
