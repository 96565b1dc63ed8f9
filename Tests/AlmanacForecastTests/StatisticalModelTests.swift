import Foundation
import PropertyBased
import Testing
@testable import AlmanacForecast

/// The airline passengers series (Box & Jenkins, monthly 1949–1960), the textbook test series.
let airPassengers: [Double] = [
    112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118, 115, 126, 141, 135, 125, 149, 170, 170, 158, 133, 114, 140,
    145, 150, 178, 163, 172, 178, 199, 199, 184, 162, 146, 166, 171, 180, 193, 181, 183, 218, 230, 242, 209, 191, 172, 194,
    196, 196, 236, 235, 229, 243, 264, 272, 237, 211, 180, 201, 204, 188, 235, 227, 234, 264, 302, 293, 259, 229, 203, 229,
    242, 233, 267, 269, 270, 315, 364, 347, 312, 274, 237, 278, 284, 277, 317, 313, 318, 374, 413, 405, 355, 306, 271, 306,
    315, 301, 356, 348, 355, 422, 465, 467, 404, 347, 305, 336, 340, 318, 362, 348, 363, 435, 491, 505, 404, 359, 310, 337,
    360, 342, 406, 396, 420, 472, 548, 559, 463, 407, 362, 405, 417, 391, 419, 461, 472, 535, 622, 606, 508, 461, 390, 432,
]

@Suite struct ETSTests {
    /// Seasonal indices (mean 1) used as known initial states below.
    static let seasonIndex = [0.91, 0.88, 1.0, 0.97, 0.98, 1.1, 1.22, 1.21, 1.06, 0.93, 0.8, 0.94]

    /// Runs the recursion at fixed parameters and states (α 0.6, β 0.05, γ 0.1, φ 0.95, ℓ₀ 118, b₀ 1.5).
    func fixed(_ spec: ETSSpec) -> (fit: ETSFit, m2ll: Double) {
        var x = [0.6]
        if spec.trend != .none { x.append(0.05) }
        if spec.season != .none { x.append(0.1) }
        if spec.damped { x.append(0.95) }
        x.append(118)
        if spec.trend != .none { x.append(1.5) }
        var seasons = spec.season == .multiplicative ? Self.seasonIndex : Self.seasonIndex.map { ($0 - 1) * 120 }
        if spec.season == .none { seasons = [] }
        let m = spec.season == .none ? 1 : 12
        var buffer = seasons.isEmpty ? [0] : seasons
        let r = buffer.withUnsafeMutableBufferPointer { ETS.likelihood(airPassengers, spec: spec, period: m, x: x, seasons: $0) }
        let fit = ETSFit(spec: spec, period: m, alpha: 0.6, beta: 0.05, gamma: 0.1, phi: spec.damped ? 0.95 : 1, level: r.level,
                         slope: r.slope, seasons: seasons.isEmpty ? [] : buffer, count: airPassengers.count, sigma2: 1,
                         minus2LogLikelihood: r.minus2LogLikelihood, parameterCount: 0)
        return (fit, r.minus2LogLikelihood)
    }

    // Reference values, with the same known initial states and fixed parameters:
    // - additive seasons and no season: statsmodels 0.15.0 `ETSModel`, an independent
    //   implementation of the same state-space models;
    // - multiplicative seasons: a direct transcription of Hyndman, Koehler, Ord & Snyder
    //   (2008), Table 2.3, in error-correction form (sₜ = sₜ₋ₘ(1 + γεₜ)). statsmodels uses
    //   the Holt–Winters component form there (sₜ = γ*·yₜ/ℓₜ + (1 − γ*)sₜ₋ₘ), which is a
    //   different model for multiplicative seasons, so it is not a reference for them.
    @Test(arguments: [
        (ETSSpec(error: .additive, trend: .additive, season: .additive), -673.5753245739842, [453.380706, 442.897958, 476.883627]),
        (ETSSpec(error: .additive, trend: .additive, damped: true, season: .additive), -672.2293083414099, [450.427138, 438.286478, 470.679811]),
        (ETSSpec(error: .additive, trend: .none, season: .none), -733.9343264956526, [431.760728, 431.760728, 431.760728]),
        (ETSSpec(error: .multiplicative, trend: .additive, damped: true, season: .none), -700.4018863599806, [427.37208, 423.790005, 420.387034]),
        (ETSSpec(error: .multiplicative, trend: .additive, damped: true, season: .multiplicative), -547.9674701274794, [449.147573, 432.348936, 494.499006]),
        (ETSSpec(error: .multiplicative, trend: .additive, season: .multiplicative), -547.1396884075186, [451.511677, 436.082738, 500.415315]),
        (ETSSpec(error: .multiplicative, trend: .none, season: .multiplicative), -551.2619886898749, [445.983522, 428.519209, 489.254083]),
    ])
    func likelihoodAndForecastMatchAnIndependentImplementation(spec: ETSSpec, logLikelihood: Double, forecast: [Double]) {
        let (fit, m2ll) = fixed(spec)
        #expect(abs(-m2ll / 2 - logLikelihood) < 1e-6, "\(spec): log-likelihood \(-m2ll / 2), statsmodels \(logLikelihood)")
        for (mine, theirs) in zip(fit.pointForecast(horizon: 3), forecast) {
            #expect(abs(mine - theirs) < 1e-5, "\(spec): forecast \(mine), statsmodels \(theirs)")
        }
    }

    @Test func fittedAirlineModelIsCloseToTheFullMaximumLikelihood() throws {
        // statsmodels, optimising all 17 parameters (initial seasonal states included), reaches
        // log-likelihood −525.617 for ETS(M,Ad,M) (its multiplicative season is the Holt–Winters
        // form, a slightly different model); ours, searching the same 17 parameters, must come close.
        let fit = try #require(ETS.fit(airPassengers, spec: ETSSpec(error: .multiplicative, trend: .additive, damped: true, season: .multiplicative), period: 12))
        let logLikelihood = -fit.minus2LogLikelihood / 2
        #expect(logLikelihood > -525.617 - 2, "log-likelihood \(logLikelihood)")
        #expect(logLikelihood < -525.617 + 1)
        // AutoETS picks a multiplicative-season model for this series, as R and statsmodels do.
        let auto = try #require(ETS.auto(airPassengers, period: 12))
        #expect(auto.spec.season == .multiplicative, "chose \(auto.spec)")
    }

    @Test func recoversTheSmoothingOfASimulatedLocalLevel() throws {
        // y_t = ℓ_{t−1} + ε_t, ℓ_t = ℓ_{t−1} + 0.3 ε_t, σ = 1.
        var rng = SplitMix64(seed: 42)
        var level = 100.0
        let y = (0..<2000).map { _ in
            let e = rng.normal()
            let v = level + e
            level += 0.3 * e
            return v
        }
        let fit = try #require(ETS.auto(y, period: 1))
        #expect(fit.spec.trend == .none, "chose \(fit.spec)")
        #expect(abs(fit.alpha - 0.3) < 0.06, "α = \(fit.alpha)")
        #expect(abs(fit.sigma2.squareRoot() * (fit.spec.error == .multiplicative ? level : 1) - 1) < 0.15)
    }

    @Test func linearModelIntervalsFollowTheClassOneVariance() throws {
        // ETS(A,N,N): Var(h) = σ²(1 + (h−1)α²).
        let fit = ETSFit(spec: ETSSpec(error: .additive, trend: .none, season: .none), period: 1, alpha: 0.5, beta: 0, gamma: 0, phi: 1,
                         level: 10, slope: 0, seasons: [], count: 50, sigma2: 4, minus2LogLikelihood: 0, parameterCount: 2)
        let f = fit.forecast(horizon: 3, levels: [0.1, 0.9])
        for h in 0..<3 {
            let sd = (4 * (1 + Double(h) * 0.25)).squareRoot()
            #expect(abs(f.quantiles[0.9]![h] - (10 + 1.2815515655446004 * sd)) < 1e-9)
        }
    }
}

@Suite struct DecompositionTests {
    @Test func stlMatchesTheReferenceImplementation() {
        // statsmodels 0.15.0 STL(period 12, seasonal 11, seasonal_deg 0, trend 21, low_pass 13,
        // jumps 2/3/2, inner_iter 2, outer_iter 0) — the defaults of R's stl — on the airline series.
        let (seasonal, trend) = Decomposition.stl(airPassengers, period: 12, seasonalWindow: 11)
        let expectedSeasonal = [(0, -16.97707409), (1, -17.17763334), (50, 6.09024542), (143, -44.19632498)]
        let expectedTrend = [(0, 123.14505693), (1, 123.72506924), (50, 219.83365065), (143, 496.68325403)]
        for (i, v) in expectedSeasonal { #expect(abs(seasonal[i] - v) < 1e-6, "seasonal[\(i)] = \(seasonal[i]), expected \(v)") }
        for (i, v) in expectedTrend { #expect(abs(trend[i] - v) < 1e-6, "trend[\(i)] = \(trend[i]), expected \(v)") }
    }

    @Test func mstlSeparatesTwoKnownSeasons() {
        // A daily (24) and a weekly (168) sine plus a slow trend: the parts come back.
        let n = 24 * 7 * 6
        let daily = (0..<n).map { 10 * sin(2 * Double.pi * Double($0) / 24) }
        let weekly = (0..<n).map { 5 * sin(2 * Double.pi * Double($0) / 168) }
        let y: [Double] = (0..<n).map { (t: Int) -> Double in 100 + 0.01 * Double(t) + daily[t] + weekly[t] }
        let parts = Decomposition.mstl(y, periods: [24, 168])
        let middle = (168..<(n - 168))
        let dailyError = middle.map { abs(parts.seasonal[0][$0] - daily[$0]) }.max()!
        let weeklyError = middle.map { abs(parts.seasonal[1][$0] - weekly[$0]) }.max()!
        #expect(dailyError < 0.5, "daily part off by \(dailyError)")
        #expect(weeklyError < 0.75, "weekly part off by \(weeklyError)")
    }

    @Test func classicalIndicesAndSeasonalityTest() {
        let figure = Decomposition.seasonalIndices(airPassengers, period: 12, multiplicative: true)
        #expect(abs(figure.reduce(0, +) - 12) < 1e-9)
        #expect(figure[6] > 1.2 && figure[10] < 0.85)  // July high, November low
        #expect(Decomposition.isSeasonal(airPassengers, period: 12))
        var rng = SplitMix64(seed: 7)
        #expect(!Decomposition.isSeasonal((0..<200).map { _ in rng.normal() }, period: 12))
    }
}

@Suite struct ThetaTests {
    @Test func standardThetaForecastIsSESPlusHalfTheTrend() {
        // Fiorucci et al. (2016), eq. 6: ŷ_{n+h} = ℓ_n + (1 − 1/θ)[A_n(1−α)^n + B_n((1 − (1−α)^{n+1})/α + h − 1)]
        // for the non-dynamic model, with A_n, B_n the OLS line through the whole series.
        let y = Array(airPassengers.prefix(60))
        let model = ThetaModel(.standard)
        let fit = model.fitParameters(y)
        let f = model.simulate(y, fit: fit, horizon: 6, levels: [0.5])
        var level = fit.level0
        for v in y { level = fit.alpha * v + (1 - fit.alpha) * level }
        let (a, b) = Numeric.line(y)
        let n = Double(y.count), decay = pow(1 - fit.alpha, n)
        for h in 1...6 {
            let expected = level + 0.5 * (a * decay + b * ((1 - decay * (1 - fit.alpha)) / fit.alpha + Double(h) - 1))
            #expect(abs(f.mean[h - 1] - expected) < 1e-8 * abs(expected), "h=\(h): \(f.mean[h - 1]) vs \(expected)")
        }
    }

    @Test func dynamicThetaTracksALinearTrend() {
        let y = (0..<100).map { 50 + 2 * Double($0) }
        let f = ThetaModel(.dynamicOptimized).forecast(y, horizon: 5, seasons: [1], levels: [0.5])
        for h in 0..<5 { #expect(abs(f.mean[h] - (50 + 2 * Double(100 + h))) < 1.0, "step \(h): \(f.mean[h])") }
    }
}

@Suite struct IntermittentTests {
    @Test func crostonSBAAndTSBByHand() {
        // Demands 4 at t=1 and 6 at t=4 (intervals 2 then 3), α = β = 0.5.
        let y: [Double] = [0, 4, 0, 0, 6, 0]
        let c = IntermittentModel(.croston, alpha: 0.5, beta: 0.5).forecast(y, horizon: 2, seasons: [1], levels: [0.5])
        // size 4 → 4 + 0.5·2 = 5; interval 2 → 2 + 0.5·(3 − 2) = 2.5; rate 2.
        #expect(c.mean == [2, 2])
        let sba = IntermittentModel(.sba, alpha: 0.5, beta: 0.5).forecast(y, horizon: 1, seasons: [1], levels: [0.5])
        #expect(abs(sba.mean[0] - 2 * 0.75) < 1e-12)
        // TSB: probability 1 at t = 1, then 0.5, 0.25, 0.625 (demand), 0.3125 at t = 2…5; size 5.
        let tsb = IntermittentModel(.tsb, alpha: 0.5, beta: 0.5).forecast(y, horizon: 1, seasons: [1], levels: [0.1, 0.9])
        #expect(abs(tsb.mean[0] - 0.3125 * 5) < 1e-12)
        #expect(tsb.quantiles[0.1]![0] == 0)  // no demand is the likeliest outcome
        #expect(tsb.quantiles[0.9]![0] > 0)
    }

    @Test func allZeroSeriesForecastsZero() {
        let f = IntermittentModel(.tsb).forecast([0, 0, 0, 0], horizon: 3, seasons: [1], levels: [0.1, 0.9])
        #expect(f.mean == [0, 0, 0] && f.quantiles[0.9]! == [0, 0, 0])
    }

    @Test func nptsDrawsOnlyPastValuesFromTheSameSeasonPosition() {
        let y: [Double] = (0..<70).map { (t: Int) -> Double in Double(t % 7) * 10 + Double(t / 7) * 0.001 }
        let f = NPTSModel(seasonal: true).forecast(y, horizon: 14, seasons: [7], levels: [0.1, 0.5, 0.9])
        for h in 0..<14 {
            for l in [0.1, 0.5, 0.9] { #expect((f.quantiles[l]![h] / 10).rounded(.down) == Double(h % 7), "step \(h) level \(l)") }
        }
    }
}

@Suite struct AutoMLTests {
    @Test func picksTheSeasonalModelOnASeasonalSeriesAndSaysWhy() {
        var rng = SplitMix64(seed: 3)
        let y = (0..<240).map { 100 + 30 * sin(2 * Double.pi * Double($0) / 12) + rng.normal() }
        let auto = AutoMLModel(candidates: [NaiveModel(), SeasonalNaiveModel()], metric: .mase, windows: 2, ensembleSize: 1)
        let f = auto.forecast(y, horizon: 12, seasons: [12], levels: [0.1, 0.5, 0.9])
        #expect(f.method.hasPrefix("seasonal_naive [mase"), "\(f.method)")
        #expect(f.method.contains("2 windows"))
    }

    /// The models short series lean on.
    let anchors = ["dynamic_optimized_theta", "optimized_theta"]

    /// The mean of the named models' forecasts, computed here model by model.
    func meanOf(_ names: [String], _ y: [Double], horizon: Int, season: Int) -> [Double] {
        let fs = names.map { ModelCatalog.model(named: $0)!.forecast(y, horizon: horizon, seasons: [season], levels: [0.1, 0.5, 0.9]).mean }
        return (0..<horizon).map { h in fs.map { $0[h] }.reduce(0, +) / Double(fs.count) }
    }

    func close(_ a: [Double], _ b: [Double]) -> Bool { a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-9 * max(1, abs($1)) } }

    @Test func aShortSeriesWithoutASeasonIsTheMeanOfTheAnchors() {
        var rng = SplitMix64(seed: 11)
        let y: [Double] = (0..<14).map { (t: Int) -> Double in 100 + 3 * Double(t) + 4 * rng.normal() }  // 14 < 6 horizons of 6
        let choice = AutoMLModel().choose(y, horizon: 6, seasons: [1], levels: [0.1, 0.5, 0.9])
        #expect(choice.members == anchors && choice.forecast.method.hasPrefix("short series"), "\(choice.forecast.method)")
        #expect(close(choice.forecast.mean, meanOf(anchors, y, horizon: 6, season: 1)))
        #expect(close(choice.model.forecast(y, horizon: 6, seasons: [1], levels: [0.5]).mean, choice.forecast.mean), "the stored choice refits to the same forecast")
    }

    @Test func aShortSeasonalSeriesIsTheMeanOfTheAnchorsAndTheBacktestsChoice() {
        var rng = SplitMix64(seed: 12)
        let pattern: [Double] = [1, -1, 2, -2]
        let y: [Double] = (0..<40).map { (t: Int) -> Double in 50 + 10 * pattern[t % 4] + 0.5 * Double(t) + rng.normal() }  // 40 < 6 horizons of 8
        var plain = AutoMLModel()
        plain.shortSeriesHorizons = 0
        let unshrunk = plain.choose(y, horizon: 8, seasons: [4], levels: [0.1, 0.5, 0.9])
        let choice = AutoMLModel().choose(y, horizon: 8, seasons: [4], levels: [0.1, 0.5, 0.9])
        let expected = anchors + unshrunk.members.filter { !anchors.contains($0) }
        #expect(choice.members == expected && choice.combination == Combination.mean && choice.windows == 2, "\(choice.members) vs \(expected)")
        #expect(close(choice.forecast.mean, meanOf(expected, y, horizon: 8, season: 4)))
        #expect(choice.score.isFinite && choice.holdout?.mean.count == 8, "the shrunk choice is backtested over the same windows")
    }

    @Test func aSeasonalSeriesTooShortToBacktestTakesTheAnchorsAndSeasonalNaive() {
        let pattern: [Double] = [1, -1, 2, -2]
        let y: [Double] = (0..<12).map { (t: Int) -> Double in 20 + 5 * pattern[t % 4] + Double(t) }  // no 8-step window after 8 values
        let choice = AutoMLModel().choose(y, horizon: 8, seasons: [4], levels: [0.1, 0.5, 0.9])
        #expect(choice.members == anchors + ["seasonal_naive"] && choice.windows == 0)
        #expect(close(choice.forecast.mean, meanOf(anchors + ["seasonal_naive"], y, horizon: 8, season: 4)))
    }

    @Test func aLongSeriesIsChosenByItsBacktestAlone() {
        var rng = SplitMix64(seed: 13)
        let y: [Double] = (0..<120).map { (t: Int) -> Double in 100 + 30 * sin(2 * Double.pi * Double(t) / 12) + rng.normal() }  // 120 ≥ 6 horizons of 12
        var plain = AutoMLModel()
        plain.shortSeriesHorizons = 0
        let a = AutoMLModel().choose(y, horizon: 12, seasons: [12], levels: [0.1, 0.5, 0.9])
        let b = plain.choose(y, horizon: 12, seasons: [12], levels: [0.1, 0.5, 0.9])
        #expect(a.members == b.members && a.combination == b.combination && a.forecast.mean == b.forecast.mean)
        #expect(!a.forecast.method.hasPrefix("short series"))
    }

    @Test func aCandidateListWithoutTheAnchorsIsNotShrunk() {
        let y: [Double] = (0..<14).map { (t: Int) -> Double in 10 + Double(t % 3) }
        let auto = AutoMLModel(candidates: [NaiveModel(), SeasonalNaiveModel()], metric: .mase, windows: 2, ensembleSize: 1)
        #expect(!auto.choose(y, horizon: 6, seasons: [1], levels: [0.5]).members.contains { anchors.contains($0) })
    }

    @Test func medianEnsembleCombinesStepByStep() {
        let a = Forecast(mean: [1, 10], quantiles: [0.5: [1, 10]]), b = Forecast(mean: [2, 20], quantiles: [0.5: [2, 20]])
        let c = Forecast(mean: [9, 30], quantiles: [0.5: [9, 30]])
        #expect(Combination.median.combine([a, b, c]).mean == [2, 20])
        #expect(Combination.mean.combine([a, b, c]).quantiles[0.5] == [4, 20])
    }

    @Test func unknownModelNamesAreRefusedWithTheKnownOnes() {
        #expect(throws: ForecastInputError.self) { try ModelCatalog.model(from: "auto_ets,prophet") }
        do { _ = try ModelCatalog.model(from: "prophet") } catch let e as ForecastInputError {
            #expect(e.message.contains("prophet") && e.message.contains("auto_ets"))
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func quantilesNeverCrossForAnyModel() async {
        let levels = [0.025, 0.1, 0.3, 0.5, 0.7, 0.9, 0.975]
        let series = Gen.double(in: -1000...1000).array(of: 1...80)
        await propertyCheck(count: 40, input: series, Gen.int(in: 1...13)) { x, season in
            for name in ModelCatalog.names {
                let fc = ModelCatalog.model(named: name)!.forecast(x, horizon: 8, seasons: [season], levels: levels)
                let finiteMean = fc.mean.count == 8 && fc.mean.allSatisfy { $0.isFinite }
                #expect(finiteMean, "\(name): \(fc.mean)")
                for h in 0..<8 {
                    let values = levels.map { fc.quantiles[$0]![h] }
                    #expect(values == values.sorted(), "\(name): levels cross at step \(h)")
                    let finite = values.allSatisfy { $0.isFinite }
                    #expect(finite, "\(name): non-finite quantile at step \(h)")
                }
            }
        }
    }
}

@Suite struct ARIMATests {
    @Test func airlineModelOnLogPassengersMatchesThePublishedFit() throws {
        // Box & Jenkins' airline model ARIMA(0,1,1)(0,1,1)12 on log passengers; R's `arima`
        // (exact likelihood) gives ma1 = −0.4018, sma1 = −0.5569. Ours is conditional least
        // squares, which lands close to it.
        let order = ARIMAOrder(p: 0, d: 1, q: 1, P: 0, D: 1, Q: 1, m: 12)
        let fit = try #require(ARIMA.fit(airPassengers.map { log($0) }, order: order))
        #expect(abs(fit.theta[0] - -0.4018) < 0.06, "ma1 \(fit.theta[0])")
        #expect(abs(fit.seasonalTheta[0] - -0.5569) < 0.06, "sma1 \(fit.seasonalTheta[0])")
        // Forecasts continue the seasonal pattern upward: next July above next January.
        let f = fit.forecast(horizon: 12, levels: [0.1, 0.9])
        #expect(f.mean[6] > f.mean[0] && f.mean[0] > log(400))
    }

    @Test func differencingIsChosenByTheUnitRootTest() {
        var rng = SplitMix64(seed: 11)
        var walk = [0.0]
        for _ in 0..<400 { walk.append(walk.last! + rng.normal()) }
        let noise = (0..<400).map { _ in rng.normal() }
        #expect(ARIMA.kpssStatistic(walk) > 0.463)
        #expect(ARIMA.kpssStatistic(noise) < 0.463)
        #expect(ARIMA.auto(walk, period: 1)?.order.d == 1)
        #expect(ARIMA.auto(noise, period: 1)?.order.d == 0)
    }

    @Test func autoRegressionIsRecovered() throws {
        var rng = SplitMix64(seed: 5)
        var y = [0.0]
        for _ in 0..<1000 { y.append(0.7 * y.last! + rng.normal()) }
        let fit = try #require(ARIMA.auto(y, period: 1))
        #expect(fit.order.d == 0 && fit.order.p >= 1, "chose \(fit.order)")
        let one = try #require(ARIMA.fit(y, order: ARIMAOrder(p: 1, d: 0, q: 0)))
        #expect(abs(one.phi[0] - 0.7) < 0.05, "φ = \(one.phi[0])")
    }

    @Test func randomWalkIntervalsWidenWithTheSquareRootOfTheHorizon() throws {
        let y: [Double] = [1, 3, 2, 4, 3, 5, 4, 6, 5, 7, 6, 8]
        let fit = try #require(ARIMA.fit(y, order: ARIMAOrder(p: 0, d: 1, q: 0)))
        let f = fit.forecast(horizon: 4, levels: [0.5, 0.9])
        #expect(f.mean == [8, 8, 8, 8])
        let z = normalQuantile(0.9), sd = fit.sigma2.squareRoot()
        for h in 0..<4 { #expect(abs(f.quantiles[0.9]![h] - (8 + z * sd * Double(h + 1).squareRoot())) < 1e-9) }
    }

    @Test func differencingRoundTrips() {
        let y: [Double] = (0..<40).map { (t: Int) -> Double in Double(t * t % 17) + Double(t) }
        let w = ARIMA.differences(y, d: 1, D: 1, m: 4)
        // Integrating the last differences again from the earlier history gives the series back.
        let back = ARIMA.integrate(Array(w.suffix(5)), series: Array(y.prefix(35)), d: 1, D: 1, m: 4)
        for (a, b) in zip(back, y.suffix(5)) { #expect(abs(a - b) < 1e-9) }
    }
}

@Suite struct AwkwardSeriesTests {
    @Test(arguments: [
        ("constant", [Double](repeating: 42, count: 60), 42.0),
        ("all zero", [Double](repeating: 0, count: 60), 0.0),
        ("two values", [5, 5], 5.0),
    ])
    func autoMLForecastsFlatSeriesFlat(name: String, y: [Double], level: Double) {
        let f = AutoMLModel().forecast(y, horizon: 6, seasons: [12], levels: [0.1, 0.5, 0.9])
        for h in 0..<6 {
            #expect(abs(f.mean[h] - level) < 1e-6, "\(name): step \(h) mean \(f.mean[h]) (\(f.method))")
            #expect(abs(f.quantiles[0.5]![h] - level) < 1e-6, "\(name): step \(h) p50")
        }
    }

    @Test func negativeValuesKeepMultiplicativeModelsOut() throws {
        var rng = SplitMix64(seed: 9)
        let y = (0..<120).map { (t: Int) -> Double in 10 * sin(Double(t) / 2) - 3 + rng.normal() }
        let fit = try #require(ETS.auto(y, period: 12))
        #expect(fit.spec.error == .additive && fit.spec.season != .multiplicative)
        let f = AutoMLModel().forecast(y, horizon: 12, seasons: [12], levels: [0.1, 0.9])
        #expect(f.mean.allSatisfy { $0.isFinite })
    }
}

@Suite struct FeaturizationTests {
    @Test func frontfillAndBackfillExtendToTheDatasetBounds() throws {
        let csv = """
            item_id,timestamp,target_value
            A,2026-01-01,1
            A,2026-01-02,2
            A,2026-01-03,3
            A,2026-01-04,4
            B,2026-01-02,10
            B,2026-01-03,20
            """
        let plain = try SeriesReader.read(csv: csv)
        #expect(plain[1].values == [10, 20])
        let filled = try SeriesReader.read(csv: csv, frontfill: .zero, backfill: .mean)
        #expect(filled[0].values == [1, 2, 3, 4])
        #expect(filled[1].values == [0, 10, 20, 15])
        #expect(filled[1].start == filled[0].start)
    }
}

@Suite struct AdmissibilityTests {
    @Test func boundsOfTheAdmissibleRegion() {
        let ann = ETSSpec(error: .additive, trend: .none, season: .none)
        // ETS(A,N,N) is admissible for 0 < α < 2.
        #expect(ETS.admissible(spec: ann, period: 1, alpha: 0.5, beta: 0, gamma: 0, phi: 1))
        #expect(ETS.admissible(spec: ann, period: 1, alpha: 1.9, beta: 0, gamma: 0, phi: 1))
        #expect(!ETS.admissible(spec: ann, period: 1, alpha: 2.1, beta: 0, gamma: 0, phi: 1))
        // ETS(A,A,N): 0 < α < 2 and 0 < β < 4 − 2α.
        let aan = ETSSpec(error: .additive, trend: .additive, season: .none)
        #expect(ETS.admissible(spec: aan, period: 1, alpha: 1.5, beta: 0.9, gamma: 0, phi: 1))
        #expect(!ETS.admissible(spec: aan, period: 1, alpha: 1.5, beta: 1.1, gamma: 0, phi: 1))
        // Usual seasonal parameters are admissible; a season smoothing past 1 − α + … is not.
        let ana = ETSSpec(error: .additive, trend: .none, season: .additive)
        #expect(ETS.admissible(spec: ana, period: 4, alpha: 0.3, beta: 0, gamma: 0.2, phi: 1))
        #expect(!ETS.admissible(spec: ana, period: 4, alpha: 0.3, beta: 0, gamma: 2.5, phi: 1))
    }
}
