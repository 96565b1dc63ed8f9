/// Which predictor forecasts a dataset: the statistical AutoML, the deep global model, or
/// the mean of the two, whichever scored best on the same holdout windows (each item's last
/// `horizon` values, forecast from the values before them).
public enum PredictorKind: String, Sendable, CaseIterable {
    /// Per-item AutoML over the statistical models.
    case statistical
    /// The deep global model.
    case deep
    /// The mean of both, level by level.
    case ensemble
}

/// Champion selection between a statistical and a deep predictor of the same data.
public struct Champion: Sendable {
    /// The winner.
    public var kind: PredictorKind
    /// What each option scored on the holdout windows, by the selection metric.
    public var scores: [PredictorKind: Double]
    /// Each option's full holdout accuracy.
    public var backtests: [PredictorKind: BacktestScore]
    /// The metric the choice was made by.
    public var metric: SelectionMetric

    /// Scores the three options on the holdout windows and keeps the best (ties go to the
    /// simpler: statistical, then deep).
    /// - Parameters:
    ///   - actuals: per item, the holdout values (its last `horizon` values).
    ///   - insample: per item, the values before them (the scale of MASE and MSIS).
    ///   - statistical, deep: per item, each predictor's forecast of the holdout window.
    /// - Precondition: the arrays are parallel (one entry per item).
    public static func choose(actuals: [[Double]], insample: [[Double]], seasons: [Int],
                              statistical: [Forecast], deep: [Forecast], levels: [Double],
                              metric: SelectionMetric = .avgWQL) -> Champion {
        precondition(actuals.count == statistical.count && actuals.count == deep.count && actuals.count == insample.count,
                     "champion selection needs one actual, history and forecast of each kind per item")
        let scoring = Array(Set(levels + [0.5])).sorted()
        var backtests: [PredictorKind: BacktestScore] = [:]
        var scores: [PredictorKind: Double] = [:]
        for kind in PredictorKind.allCases {
            var score = BacktestScore(levels: scoring)
            var perItem: [Double] = []
            for i in actuals.indices {
                let f = combine(kind, statistical: statistical[i], deep: deep[i])
                score.add(actual: actuals[i], forecast: f, insample: insample[i], season: seasons.main)
                perItem.append(metric.score(actual: actuals[i], forecast: f, insample: insample[i], season: seasons.main))
            }
            backtests[kind] = score
            let finite = perItem.filter(\.isFinite)
            scores[kind] = finite.isEmpty ? .infinity : finite.reduce(0, +) / Double(finite.count)
        }
        let best = PredictorKind.allCases.min { (scores[$0] ?? .infinity, rank($0)) < (scores[$1] ?? .infinity, rank($1)) }!
        return Champion(kind: best, scores: scores, backtests: backtests, metric: metric)
    }

    static func rank(_ k: PredictorKind) -> Int { PredictorKind.allCases.firstIndex(of: k)! }

    /// The forecast the kind makes from the two predictors' forecasts.
    public static func combine(_ kind: PredictorKind, statistical: Forecast, deep: Forecast) -> Forecast {
        switch kind {
        case .statistical: return statistical
        case .deep: return deep
        case .ensemble:
            var f = Combination.mean.combine([statistical, deep])
            f.method = "mean of statistical (\(statistical.method)) and deep"
            return f
        }
    }
}
