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
    /// A series shorter than this many horizons is short: a handful of backtest windows over
    /// it are mostly noise, so its choice leans on `shortSeriesAnchors` (see `choose`).
    public var shortSeriesHorizons = 6
    /// The models short series lean on, those of them that are candidates: dynamic optimized
    /// and optimized theta, the most accurate on the M1 training parts' held-out ends (README).
    public static let shortSeriesAnchors = [ThetaModel.Variant.dynamicOptimized.rawValue, ThetaModel.Variant.optimized.rawValue]

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
        choose(history, horizon: horizon, seasons: seasons, levels: levels).forecast
    }

    /// Backtests every option on the series, picks the best, and forecasts with it.
    ///
    /// A short series (under `shortSeriesHorizons` horizons, not intermittent) is shrunk toward
    /// the anchors: without a season, the mean of the anchors; with one, the mean of the
    /// anchors and the backtest's choice (or, too short to backtest, seasonal naive).
    /// - Returns: the choice, its backtest, and the forecast from the whole series.
    public func choose(_ history: [Double], horizon: Int, seasons: [Int], levels: [Double]) -> AutoMLChoice {
        let intermittent = IntermittentModel.isIntermittent(history)
        let pool = candidates.filter { !($0 is IntermittentModel) || intermittent }
        let scoringLevels = Array(Set(levels + [0.5])).sorted()
        let cuts = pool.count > 1 ? BacktestPlan(windows: windows, horizon: horizon).cutoffs(count: history.count, minimumHistory: max(8, horizon)) : []
        let anchors = !intermittent && pool.count > 1 && history.count < shortSeriesHorizons * horizon
            ? Self.shortSeriesAnchors.compactMap { name in pool.firstIndex { $0.name == name } } : []
        /// The members a short series' choice is shrunk to, from the backtest's.
        func shrunk(_ members: [Int]) -> [Int] {
            seasons.main > 1 ? anchors + members.filter { !anchors.contains($0) } : anchors
        }
        guard !cuts.isEmpty else {
            // Too short to backtest: a short series' anchors (with seasonal naive where there is a
            // season), else the first candidate.
            let members = anchors.isEmpty ? (pool.isEmpty ? [] : [0]) : shrunk(pool.firstIndex { $0 is SeasonalNaiveModel }.map { [$0] } ?? [])
            let names = members.map { pool[$0].name }
            var f = Combination.mean.combine(members.map { pool[$0].forecast(history, horizon: horizon, seasons: seasons, levels: levels) })
            if !anchors.isEmpty {
                f.method = "short series, too short to backtest: \(ChosenModel(members: names, combination: .mean).name) \(f.method)"
            } else if pool.count > 1 {
                f.method = "\(f.method) (too short to backtest: first candidate)"
            }
            return AutoMLChoice(members: names, combination: .mean, score: .nan, bestSingle: names.first ?? "",
                                bestSingleScore: .nan, windows: 0, backtest: BacktestScore(levels: scoringLevels), forecast: f, holdout: nil)
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
        func window(_ o: Option, _ w: Int) -> Forecast { o.combination.combine(o.members.map { forecasts[$0][w] }) }
        var options = pool.indices.map { c in Option(members: [c], combination: .mean, score: score { forecasts[c][$0] }) }
        let ranked = options.sorted { $0.score < $1.score }.map { $0.members[0] }
        if ensembleSize > 1 {
            for k in 2...min(ensembleSize, ranked.count) {
                let members = Array(ranked.prefix(k))
                for combination in k == 2 ? [Combination.mean] : [.mean, .median] {
                    let o = Option(members: members, combination: combination, score: 0)
                    options.append(Option(members: members, combination: combination, score: score { window(o, $0) }))
                }
            }
        }
        var best = options.min { $0.score < $1.score }!
        if !anchors.isEmpty {
            let o = Option(members: shrunk(best.members), combination: .mean, score: 0)
            best = Option(members: o.members, combination: .mean, score: score { window(o, $0) })
        }
        var backtest = BacktestScore(levels: scoringLevels)
        for w in cuts.indices { backtest.add(actual: actuals[w], forecast: window(best, w), insample: insamples[w], season: seasons.main) }
        let finals = best.members.map { pool[$0].forecast(history, horizon: horizon, seasons: seasons, levels: levels) }
        // Where the choice's intervals missed in its backtest windows, they are widened (conformal).
        let stretches = Conformal.stretches(windows: cuts.indices.map { (actuals[$0], window(best, $0)) }, levels: levels)
        var f = Conformal.calibrated(best.combination.combine(finals), stretches: stretches)
        let single = options[ranked[0]]
        let choice = AutoMLChoice(members: best.members.map { pool[$0].name }, combination: best.combination, score: best.score,
                                  bestSingle: pool[single.members[0]].name, bestSingleScore: single.score, windows: cuts.count,
                                  backtest: backtest, forecast: f, holdout: window(best, 0))
        f.method = "\(anchors.isEmpty ? "" : "short series: ")\(choice.label) [\(metric.rawValue) \(format(best.score)); best single \(choice.bestSingle) \(format(single.score)); "
            + "\(cuts.count) window\(cuts.count == 1 ? "" : "s")] \(f.method)"
        var out = choice
        out.forecast = f
        return out
    }

    func format(_ v: Double) -> String { String(format: "%.4g", v) }
}

/// What AutoML chose for one series, and why.
public struct AutoMLChoice: Sendable {
    /// The chosen model names (one, or the members of an ensemble).
    public var members: [String]
    /// How an ensemble's members are combined.
    public var combination: Combination
    /// The choice's mean backtest score by the selection metric.
    public var score: Double
    /// The best single model and its score.
    public var bestSingle: String, bestSingleScore: Double
    /// Backtest windows scored (0: the series was too short, the first candidate was used).
    public var windows: Int
    /// The chosen option's accuracy over those windows.
    public var backtest: BacktestScore
    /// The forecast from the whole series.
    public var forecast: Forecast
    /// The choice's forecast of the latest backtest window (the last `horizon` values, from
    /// the values before them), at the requested levels and 0.5; nil when too short to backtest.
    public var holdout: Forecast?

    /// `auto_arima`, or `mean of auto_arima+mstl`.
    public var label: String { model.name }

    /// The choice as a model to forecast with again (refitted on the data it is given).
    public var model: ChosenModel { ChosenModel(members: members, combination: combination) }
}

/// A stored AutoML choice as a model: its members, refitted on the history, combined.
public struct ChosenModel: ForecastModel {
    /// Model names from `ModelCatalog`.
    public var members: [String]
    /// How members are combined.
    public var combination: Combination

    /// Makes the model.
    public init(members: [String], combination: Combination) {
        self.members = members
        self.combination = combination
    }

    /// The choice's label.
    public var name: String { members.count == 1 ? members[0] : "\(combination.rawValue) of " + members.sorted().joined(separator: "+") }

    /// Forecasts with each member and combines; members the catalogue does not know fall back to seasonal naive.
    public func forecast(_ history: [Double], horizon: Int, seasons: [Int], levels: [Double]) -> Forecast {
        let models = members.map { ModelCatalog.model(named: $0) ?? SeasonalNaiveModel() }
        var f = combination.combine(models.map { $0.forecast(history, horizon: horizon, seasons: seasons, levels: levels) })
        f.method = "\(name): \(f.method)"
        return f
    }
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
