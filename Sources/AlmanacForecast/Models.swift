import Foundation

/// A probabilistic forecast of one series: the mean path and any requested quantiles.
public struct Forecast: Sendable, Equatable {
    /// The mean (point) forecast, one value per step.
    public var mean: [Double]
    /// Quantile level → values per step; levels never cross.
    public var quantiles: [Double: [Double]]
    /// What produced it, for reports: the model as fitted, e.g. `ETS(M,Ad,N)`.
    public var method: String

    /// Makes a forecast.
    public init(mean: [Double], quantiles: [Double: [Double]], method: String = "") {
        self.mean = mean
        self.quantiles = quantiles
        self.method = method
    }

    /// A forecast whose errors are normal with the given standard deviations per step.
    public static func normal(mean: [Double], sigma: [Double], levels: [Double]) -> Forecast {
        var q: [Double: [Double]] = [:]
        for level in levels {
            let z = normalQuantile(level)
            q[level] = zip(mean, sigma).map { $0 + z * $1 }
        }
        return Forecast(mean: mean, quantiles: q).noncrossing()
    }

    /// The same forecast with quantiles sorted per step, so a higher level is never below a lower one.
    public func noncrossing() -> Forecast {
        let levels = quantiles.keys.sorted()
        guard levels.count > 1 else { return self }
        var out = quantiles
        for h in mean.indices {
            let sorted = levels.map { quantiles[$0]![h] }.sorted()
            for (i, l) in levels.enumerated() { out[l]![h] = sorted[i] }
        }
        return Forecast(mean: mean, quantiles: out, method: method)
    }
}

/// A forecasting method: fits one series and forecasts it.
public protocol ForecastModel: Sendable {
    /// The method's name in reports and `--models`.
    var name: String { get }
    /// Forecasts `horizon` steps after `history` at the given quantile levels.
    /// - Parameter seasons: the season lengths, main one first (empty or `[1]` when the data has
    ///   no season); most models use the first, multi-seasonal ones all.
    func forecast(_ history: [Double], horizon: Int, seasons: [Int], levels: [Double]) -> Forecast
}

extension ForecastModel {
    /// Forecasts with one season length.
    public func forecast(_ history: [Double], horizon: Int, season: Int, levels: [Double]) -> Forecast {
        forecast(history, horizon: horizon, seasons: [season], levels: levels)
    }
}

extension [Int] {
    /// The main season length, 1 when there is none.
    var main: Int { Swift.max(1, first ?? 1) }
}

/// The last value, repeated; intervals of a random walk (σ·√h).
public struct NaiveModel: ForecastModel {
    /// Makes the model.
    public init() {}
    /// "naive".
    public var name: String { "naive" }

    /// Forecasts the last value.
    public func forecast(_ history: [Double], horizon: Int, seasons: [Int], levels: [Double]) -> Forecast {
        SeasonalNaiveModel().forecast(history, horizon: horizon, seasons: [1], levels: levels)
    }
}

/// The value one season earlier; intervals σ·√(⌊(h−1)/m⌋+1) from the seasonal differences.
public struct SeasonalNaiveModel: ForecastModel {
    /// Makes the model.
    public init() {}
    /// "seasonal_naive".
    public var name: String { "seasonal_naive" }

    /// Forecasts the last season again.
    public func forecast(_ history: [Double], horizon: Int, seasons: [Int], levels: [Double]) -> Forecast {
        let season = seasons.main
        let x = history.filter { !$0.isNaN }
        guard let last = x.last else {
            return Forecast.normal(mean: Array(repeating: 0, count: horizon), sigma: Array(repeating: 0, count: horizon), levels: levels)
        }
        let m = season <= 1 || x.count < season ? 1 : season
        let mean = (0..<horizon).map { h in m == 1 ? last : x[x.count - m + (h % m)] }
        var sq = 0.0, n = 0
        if x.count > m {
            for t in m..<x.count {
                let e = x[t] - x[t - m]
                sq += e * e
                n += 1
            }
        }
        let sigma = n == 0 ? 0 : (sq / Double(n)).squareRoot()
        let spread = (0..<horizon).map { h in sigma * Double(h / m + 1).squareRoot() }
        var f = Forecast.normal(mean: mean, sigma: spread, levels: levels)
        f.method = m == 1 ? "naive" : "seasonal_naive m=\(m)"
        return f
    }
}
