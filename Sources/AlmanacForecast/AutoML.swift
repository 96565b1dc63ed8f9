import Foundation

/// The accuracy measure AutoML ranks candidates by (lower is better for all).
public enum SelectionMetric: String, Sendable, CaseIterable {
    /// Weighted quantile loss averaged over the requested levels (Amazon Forecast's default).
    case avgWQL = "avg_wql"
    /// Weighted absolute percentage error of the p50 (or mean).
    case wape
    /// Root mean squared error of the mean.
    case rmse
    /// MAPE of the p50.
    case mape
    /// Symmetric MAPE of the p50.
    case smape
    /// MASE of the p50 with the main season length.
    case mase
    /// MSIS of the outermost interval.
    case msis

    /// Parses a name, case-insensitively (`avg_wQL`, `MASE`, …).
    public init?(name: String) { self.init(rawValue: name.lowercased()) }

    /// The metric of one forecast against actuals; NaN when it is undefined there.
    public func score(actual: [Double], forecast f: Forecast, insample: [Double], season: Int) -> Double {
        let point = f.quantiles[0.5] ?? f.mean
        switch self {
        case .avgWQL:
            let levels = f.quantiles.keys.sorted()
            guard !levels.isEmpty else { return Metrics.wape(actual: actual, forecast: point) }
            return Numeric.mean(levels.map { Metrics.wql(actual: actual, quantile: f.quantiles[$0]!, q: $0) })
        case .wape: return Metrics.wape(actual: actual, forecast: point)
        case .rmse: return Metrics.rmse(actual: actual, forecast: f.mean)
        case .mape: return Metrics.mape(actual: actual, forecast: point)
        case .smape: return Metrics.smape(actual: actual, forecast: point)
        case .mase: return Metrics.mase(actual: actual, forecast: point, insample: insample, season: season)
        case .msis:
            let levels = f.quantiles.keys.sorted()
            guard let lo = levels.first, let hi = levels.last, lo < 0.5, hi > 0.5 else { return .nan }
            return Metrics.msis(actual: actual, lower: f.quantiles[lo]!, upper: f.quantiles[hi]!, insample: insample, season: season,
                                alpha: lo + 1 - hi)
        }
    }
}

/// How an ensemble combines its members, step by step and quantile by quantile.
public enum Combination: String, Sendable {
    /// The average.
    case mean
    /// The median.
    case median

    /// Combines member forecasts of the same horizon and levels.
    public func combine(_ members: [Forecast]) -> Forecast {
        guard let first = members.first else { return Forecast(mean: [], quantiles: [:]) }
        guard members.count > 1 else { return first }
        var column = [Double](repeating: 0, count: members.count)
        func merge(_ pick: (Forecast) -> [Double]?) -> [Double] {
            (0..<first.mean.count).map { h in
                for (i, m) in members.enumerated() { column[i] = pick(m)?[h] ?? .nan }
                if self == .mean { return column.reduce(0, +) / Double(column.count) }
                column.sort()
                return Numeric.quantile(sorted: column, 0.5)
            }
        }
        var quantiles: [Double: [Double]] = [:]
        for l in first.quantiles.keys { quantiles[l] = merge { $0.quantiles[l] } }
        let method = "\(rawValue)(" + members.map(\.method).joined(separator: "; ") + ")"
        return Forecast(mean: merge { $0.mean }, quantiles: quantiles, method: method).noncrossing()
    }
}

/// AutoML: for each series, every candidate is backtested on rolling-origin windows at the
/// forecast horizon, and so are the mean and median ensembles of the best 2…k; the option
/// with the lowest average error by the chosen metric is refitted on the whole series.
///
/// The forecast's `method` reports the choice and why: the winner, its score, and the best
/// single model's score.
public struct AutoMLModel: ForecastModel {
    /// The candidates (intermittent-demand methods are tried only on intermittent series).
    public var candidates: [any ForecastModel]
    /// What to rank by.
    public var metric: SelectionMetric
    /// Backtest windows per series for the choice.
    public var windows: Int
    /// The largest ensemble considered (1: single models only).
    public var ensembleSize: Int

    /// Makes the model.
    public init(candidates: [any ForecastModel] = AutoMLModel.standardCandidates, metric: SelectionMetric = .avgWQL, windows: Int = 2,
                ensembleSize: Int = 3) {
        self.candidates = candidates
        self.metric = metric
        self.windows = max(1, windows)
        self.ensembleSize = max(1, ensembleSize)
    }

    /// The statistical models `--models auto` tries.
    public static var standardCandidates: [any ForecastModel] {
        [SeasonalNaiveModel(), NaiveModel(), AutoETSModel(), AutoARIMAModel(), ThetaModel(.standard), ThetaModel(.optimized), ThetaModel(.dynamicOptimized),
         MSTLModel(), IntermittentModel(.croston), IntermittentModel(.sba), IntermittentModel(.tsb)]
    }

    /// "auto".
    public var name: String { "auto" }

    /// One option AutoML weighs: a single candidate or an ensemble of the best few.
    struct Option {
        var members: [Int]
        var combination: Combination
        var score: Double
    }

    /// Chooses by backtest and forecasts with the choice.
    public func forecast(_ history: [Double], horizon: Int, seasons: [Int], levels: [Double]) -> Forecast {
        let intermittent = IntermittentModel.isIntermittent(history)
        let pool = candidates.filter { !($0 is IntermittentModel) || intermittent }
        guard pool.count > 1 else { return pool.first?.forecast(history, horizon: horizon, seasons: seasons, levels: levels) ?? Forecast(mean: [], quantiles: [:]) }
        let scoringLevels = Array(Set(levels + [0.5])).sorted()
        let cuts = BacktestPlan(windows: windows, horizon: horizon).cutoffs(count: history.count, minimumHistory: max(8, horizon))
        guard !cuts.isEmpty else {
            var f = pool[0].forecast(history, horizon: horizon, seasons: seasons, levels: levels)
            f.method = "\(f.method) (too short to backtest: first candidate)"
            return f
        }
        // forecasts[c][w]: candidate c's forecast in window w.
        var forecasts = [[Forecast]](repeating: [], count: pool.count)
        var actuals: [[Double]] = [], insamples: [[Double]] = []
        for cut in cuts {
            let past = Array(history[..<cut])
            actuals.append(Array(history[cut..<min(history.count, cut + horizon)]))
            insamples.append(past)
            for (c, model) in pool.enumerated() {
                forecasts[c].append(model.forecast(past, horizon: horizon, seasons: seasons, levels: scoringLevels))
            }
        }
        func score(_ window: (Int) -> Forecast) -> Double {
            let values = cuts.indices.map { w in
                metric.score(actual: actuals[w], forecast: window(w), insample: insamples[w], season: seasons.main)
            }.filter(\.isFinite)
            return values.count == cuts.count ? Numeric.mean(values) : .infinity
        }
        var options = pool.indices.map { c in Option(members: [c], combination: .mean, score: score { forecasts[c][$0] }) }
        let ranked = options.sorted { $0.score < $1.score }.map { $0.members[0] }
        if ensembleSize > 1 {
            for k in 2...min(ensembleSize, ranked.count) {
                let members = Array(ranked.prefix(k))
                for combination in k == 2 ? [Combination.mean] : [.mean, .median] {
                    options.append(Option(members: members, combination: combination,
                                          score: score { w in combination.combine(members.map { forecasts[$0][w] }) }))
                }
            }
        }
        let best = options.min { $0.score < $1.score }!
        let finals = best.members.map { pool[$0].forecast(history, horizon: horizon, seasons: seasons, levels: levels) }
        var f = best.combination.combine(finals)
        let single = options[ranked[0]]
        let label = best.members.count == 1 ? pool[best.members[0]].name
            : "\(best.combination.rawValue) of " + best.members.map { pool[$0].name }.sorted().joined(separator: "+")
        f.method = "\(label) [\(metric.rawValue) \(format(best.score)); best single \(pool[single.members[0]].name) \(format(single.score)); "
            + "\(cuts.count) window\(cuts.count == 1 ? "" : "s")] \(f.method)"
        return f
    }

    func format(_ v: Double) -> String { String(format: "%.4g", v) }
}

/// The models `--models` can name.
public enum ModelCatalog {
    /// Every name, in the order of `--help`.
    public static let names = ["auto", "naive", "seasonal_naive", "auto_ets", "auto_arima", "theta", "optimized_theta", "dynamic_theta",
                               "dynamic_optimized_theta", "mstl", "croston", "sba", "tsb", "npts"]

    /// The model called `name`, nil when there is none.
    public static func model(named name: String) -> (any ForecastModel)? {
        switch name {
        case "auto": return AutoMLModel()
        case "naive": return NaiveModel()
        case "seasonal_naive": return SeasonalNaiveModel()
        case "auto_ets": return AutoETSModel()
        case "auto_arima": return AutoARIMAModel()
        case "mstl": return MSTLModel()
        case "npts": return NPTSModel()
        default:
            if let v = ThetaModel.Variant(rawValue: name) { return ThetaModel(v) }
            if let m = IntermittentModel.Method(rawValue: name) { return IntermittentModel(m) }
            return nil
        }
    }

    /// A model from a `--models` value: `auto`, one name, or a comma-separated list that
    /// AutoML chooses among.
    /// - Throws: `ForecastInputError` naming the unknown model.
    public static func model(from list: String, metric: SelectionMetric = .avgWQL, windows: Int = 2) throws -> any ForecastModel {
        let names = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        var models: [any ForecastModel] = []
        for n in names {
            guard let m = model(named: n) else {
                throw ForecastInputError(message: "unknown model \"\(n)\"; known: \(ModelCatalog.names.joined(separator: ", "))")
            }
            models.append(m)
        }
        if models.count == 1, var auto = models[0] as? AutoMLModel {
            auto.metric = metric
            auto.windows = windows
            return auto
        }
        guard models.count > 1 else {
            guard let only = models.first else { throw ForecastInputError(message: "no model named; known: \(ModelCatalog.names.joined(separator: ", "))") }
            return only
        }
        return AutoMLModel(candidates: models, metric: metric, windows: windows)
    }
}
