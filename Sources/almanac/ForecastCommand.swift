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
            series' grid. --models auto (the default) backtests every statistical model and the ensembles of the best \
            few on each series and keeps the best by --metric; a comma-separated list limits the choice; one name \
            runs that model alone. Models: \(ModelCatalog.names.joined(separator: ", ")). --models deep trains the deep \
            global model (python/almanac_deep, JAX) across all series; --models champion runs both AutoML and the deep \
            model and keeps the better by --metric on each series' last horizon (or their mean, when that scores best).
            """)

    @Option(help: "The input CSV (item_id,timestamp,target_value).") var input: String
    @Option(help: "Steps to forecast.") var horizon: Int
    @Option(help: "The output CSV.") var output: String
    @Option(help: "Quantile levels, comma-separated.") var quantiles: String = "0.1,0.5,0.9"
    @Option(help: "Season lengths, comma-separated, main first (default: the frequency's, e.g. 24,168 for hourly).") var season: String?
    @Option(help: "hourly, daily, weekly, monthly, quarterly or yearly (default: inferred per item).") var frequency: String?
    @Option(help: "auto, deep, champion, one model, or a comma-separated list for AutoML to choose among.") var models: String = "auto"
    @Option(help: "Flags for the deep trainer (--models deep|champion), e.g. \"--max-epochs 20 --width 128\".") var deepOptions: String = ""
    @Option(help: "What AutoML ranks by: avg_wql, wape, rmse, mape, smape, mase or msis.") var metric: String = "avg_wql"
    @Option(help: "Backtest windows per series for AutoML's choice.") var selectionWindows: Int = 2
    @Option(help: "Write each item's chosen model and why to this CSV file.") var report: String?
    @Option(help: "What missing timestamps inside a series become: zero, nan, mean, median, min, max, previous or a number.") var fill: String = "nan"
    @Option(help: "Extend each series back to the dataset's earliest timestamp with this method (default: no).") var frontfill: String?
    @Option(help: "Extend each series to the dataset's latest timestamp with this method (default: no).") var backfill: String?
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
        func method(_ text: String, _ flag: String) throws -> FillPolicy {
            guard let p = FillPolicy(text) else {
                throw ValidationError("\(flag): unknown method \"\(text)\"; use zero, nan, mean, median, min, max, previous or a number")
            }
            return p
        }
        let fillPolicy = try method(fill, "--fill")
        let front = try frontfill.map { try method($0, "--frontfill") }
        let back = try backfill.map { try method($0, "--backfill") }
        guard let rank = SelectionMetric(name: metric) else {
            throw ValidationError("--metric must be one of \(SelectionMetric.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(metric)\"")
        }
        guard selectionWindows >= 1 else { throw ValidationError("--selection-windows must be ≥ 1, got \(selectionWindows)") }
        let deepKind = PredictorKind(rawValue: models == "champion" ? "ensemble" : models).flatMap { $0 == .statistical ? nil : $0 }
        if deepKind != nil, backtestWindows > 0 { throw ValidationError("--backtest-windows works with statistical models; --models \(models) reports its holdout scores instead") }
        let model: any ForecastModel
        do { model = deepKind != nil ? AutoMLModel(metric: rank, windows: selectionWindows) : try ModelCatalog.model(from: models, metric: rank, windows: selectionWindows) }
        catch let e as ForecastInputError {
            throw ValidationError("--models: \(e.message)")
        }
        let seasons = try season.map { text -> [Int] in
            try text.split(separator: ",").map { part in
                guard let m = Int(part.trimmingCharacters(in: .whitespaces)), m >= 1 else {
                    throw ValidationError("--season must be whole numbers ≥ 1, comma-separated, got \"\(text)\"")
                }
                return m
            }
        }
        let started = ContinuousClock.now
        let text: String
        do { text = try String(contentsOfFile: input, encoding: .utf8) } catch {
            throw ValidationError("cannot read \(input): \(error.localizedDescription)")
        }
        let series: [TimeSeries]
        do { series = try SeriesReader.read(csv: text, frequency: freq, fill: fillPolicy, frontfill: front, backfill: back) } catch let e as ForecastInputError {
            throw ValidationError("\(input): \(e)")
        }
        let forecasts: [Forecast]
        if let deepKind {
            forecasts = try await DeepForecastRun(horizon: horizon, levels: levels, seasons: seasons, metric: rank, options: deepOptions)
                .forecasts(series, champion: deepKind == .ensemble, automl: model as! AutoMLModel)
        } else {
            forecasts = await ForecastEngine.run(series, model: model, horizon: horizon, levels: levels, seasons: seasons) { done, total in
                FileHandle.standardError.write(Data("\rforecast: \(done)/\(total) series".utf8))
            }
            FileHandle.standardError.write(Data("\n".utf8))
        }
        try ForecastEngine.csv(series: series, forecasts: forecasts, levels: levels).write(toFile: output, atomically: true, encoding: .utf8)
        let elapsed = ContinuousClock.now - started
        FileHandle.standardError.write(Data("wrote \(output): \(series.count) series × \(horizon) steps with \(deepKind == nil ? model.name : models) in \(elapsed)\n".utf8))
        if model is AutoMLModel, deepKind == nil { printChoices(series: series, forecasts: forecasts) }
        if backtestWindows > 0 {
            let plan = BacktestPlan(windows: backtestWindows, horizon: horizon, offset: backtestOffset)
            let (score, windows) = await ForecastEngine.backtest(series, model: model, plan: plan, levels: levels, seasons: seasons)
            print("backtest: \(model.name), \(windows) windows (\(backtestWindows) per series, offset \(plan.offset), horizon \(horizon))")
            for (name, value) in score.metrics { print("  \(name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(String(format: "%.4f", value))") }
        }
    }

    /// How many series each choice won, and the per-item report when asked for.
    func printChoices(series: [TimeSeries], forecasts: [Forecast]) {
        var counts: [String: Int] = [:]
        var rows = "item_id,chosen,reason,fitted\n"
        for (s, f) in zip(series, forecasts) {
            let chosen = f.method.components(separatedBy: " [").first ?? f.method
            counts[chosen, default: 0] += 1
            let reason = f.method.firstIndex(of: "[").flatMap { start in
                f.method[start...].firstIndex(of: "]").map { String(f.method[f.method.index(after: start)..<$0]) }
            } ?? ""
            let fitted = f.method.components(separatedBy: "] ").dropFirst().joined(separator: "] ")
            rows += [s.id, chosen, reason, fitted].map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }.joined(separator: ",") + "\n"
        }
        FileHandle.standardError.write(Data("chosen by backtest (\(metric)):\n".utf8))
        for (name, n) in counts.sorted(by: { $0.value > $1.value }) {
            FileHandle.standardError.write(Data("  \(String(n).padding(toLength: 6, withPad: " ", startingAt: 0)) \(name)\n".utf8))
        }
        if let report {
            do { try rows.write(toFile: report, atomically: true, encoding: .utf8) } catch {
                FileHandle.standardError.write(Data("cannot write --report \(report): \(error.localizedDescription)\n".utf8))
            }
        }
    }
}
