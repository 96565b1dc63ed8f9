import AlmanacForecast
import ArgumentParser
import Foundation

/// `almanac forecast`: the forecasting library on a CSV file.
struct ForecastCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forecast",
        abstract: "Forecast every series of an item_id,timestamp,target_value CSV file.",
        discussion: """
            Writes item_id,timestamp,mean and one column per quantile (p10, p50, p90, p2.5, …), continuing each \
            series' grid. Models available so far: naive, seasonal_naive (the AutoML models are being built).
            """)

    @Option(help: "The input CSV (item_id,timestamp,target_value).") var input: String
    @Option(help: "Steps to forecast.") var horizon: Int
    @Option(help: "The output CSV.") var output: String
    @Option(help: "Quantile levels, comma-separated.") var quantiles: String = "0.1,0.5,0.9"
    @Option(help: "The season length (default: the frequency's first, e.g. 24 for hourly).") var season: Int?
    @Option(help: "hourly, daily, weekly, monthly, quarterly or yearly (default: inferred per item).") var frequency: String?
    @Option(help: "The model: naive or seasonal_naive.") var models: String = "seasonal_naive"
    @Option(help: "What missing timestamps become: zero, nan, mean, median, min, max, frontfill or a number.") var fill: String = "nan"
    @Option(help: "Rolling-origin backtest windows to score (0: none).") var backtestWindows: Int = 0
    @Option(help: "Steps from the end of the data to the latest backtest cut-off (default: the horizon).") var backtestOffset: Int?

    func run() async throws {
        guard horizon > 0 else { throw ValidationError("--horizon must be ≥ 1, got \(horizon)") }
        guard backtestWindows >= 0 else { throw ValidationError("--backtest-windows must be ≥ 0, got \(backtestWindows)") }
        if let o = backtestOffset, o < 1 { throw ValidationError("--backtest-offset must be ≥ 1, got \(o)") }
        let levels = try quantiles.split(separator: ",").map { part -> Double in
            guard let q = Double(part.trimmingCharacters(in: .whitespaces)), q > 0, q < 1 else {
                throw ValidationError("--quantiles must be numbers between 0 and 1, got \"\(part)\"")
            }
            return q
        }.sorted()
        let freq = try frequency.map { f -> Frequency in
            guard let parsed = Frequency(rawValue: f) else {
                throw ValidationError("--frequency must be one of \(Frequency.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(f)\"")
            }
            return parsed
        }
        guard let fillPolicy = FillPolicy(fill) else { throw ValidationError("--fill: unknown policy \"\(fill)\"") }
        let model: any ForecastModel
        switch models {
        case "naive": model = NaiveModel()
        case "seasonal_naive": model = SeasonalNaiveModel()
        default: throw ValidationError("--models: \"\(models)\" is not available yet; use naive or seasonal_naive")
        }
        let started = ContinuousClock.now
        let text: String
        do { text = try String(contentsOfFile: input, encoding: .utf8) } catch {
            throw ValidationError("cannot read \(input): \(error.localizedDescription)")
        }
        let series: [TimeSeries]
        do { series = try SeriesReader.read(csv: text, frequency: freq, fill: fillPolicy) } catch let e as ForecastInputError {
            throw ValidationError("\(input): \(e)")
        }
        let forecasts = await ForecastEngine.run(series, model: model, horizon: horizon, levels: levels, season: season) { done, total in
            FileHandle.standardError.write(Data("\rforecast: \(done)/\(total) series".utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        try ForecastEngine.csv(series: series, forecasts: forecasts, levels: levels).write(toFile: output, atomically: true, encoding: .utf8)
        let elapsed = ContinuousClock.now - started
        FileHandle.standardError.write(Data("wrote \(output): \(series.count) series × \(horizon) steps with \(model.name) in \(elapsed)\n".utf8))
        if backtestWindows > 0 {
            let plan = BacktestPlan(windows: backtestWindows, horizon: horizon, offset: backtestOffset)
            let (score, windows) = await ForecastEngine.backtest(series, model: model, plan: plan, levels: levels, season: season)
            print("backtest: \(model.name), \(windows) windows (\(backtestWindows) per series, offset \(plan.offset), horizon \(horizon))")
            for (name, value) in score.metrics { print("  \(name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(String(format: "%.4f", value))") }
        }
    }
}
