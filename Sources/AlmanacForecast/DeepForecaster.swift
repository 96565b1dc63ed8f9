import Foundation

/// The deep global forecaster (`python/almanac_deep`, JAX), run as a child process: one
/// network trained across every series, forecasts at the requested levels, and a forecast of
/// each series' holdout window (its last `horizon` values, never seen in training) for
/// champion selection. JAX runs on a GPU when the process can see one, else on the CPU.
public struct DeepForecaster: Sendable {
    /// What one training produced.
    public struct Fit: Sendable {
        /// Per series: the forecast from its end.
        public var forecasts: [Forecast]
        /// Per series: the forecast of its last `horizon` values from the values before them.
        public var holdouts: [Forecast]
    }

    /// The Python interpreter (`ALMANAC_PYTHON`, default `python3`).
    public var python: String
    /// The folder holding the `almanac_deep` package.
    public var packageRoot: String
    /// Extra `fit` flags (`--width 64`, `--max-epochs 5`, …).
    public var options: [String]

    /// Makes a forecaster; throws when the package cannot be found.
    public init(options: [String] = [], environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        python = environment["ALMANAC_PYTHON"] ?? "python3"
        guard let root = Self.locatePackage(environment: environment) else {
            throw ForecastInputError(message: "the deep model's Python package (python/almanac_deep) was not found from "
                + "\(FileManager.default.currentDirectoryPath) or the executable's folders; set ALMANAC_DEEP_PATH to the folder that holds almanac_deep")
        }
        packageRoot = root
        self.options = options
    }

    /// `ALMANAC_DEEP_PATH`, else the first `python/` holding `almanac_deep` in the current
    /// directory, the executable's directory, or a folder above either.
    public static func locatePackage(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        let fm = FileManager.default
        if let p = environment["ALMANAC_DEEP_PATH"] { return fm.fileExists(atPath: p + "/almanac_deep/__main__.py") ? p : nil }
        let starts = [fm.currentDirectoryPath, URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path]
        for start in starts {
            var dir = URL(fileURLWithPath: start)
            for _ in 0..<8 {
                let candidate = dir.appendingPathComponent("python")
                if fm.fileExists(atPath: candidate.appendingPathComponent("almanac_deep/__main__.py").path) { return candidate.path }
                dir.deleteLastPathComponent()
            }
        }
        return nil
    }

    /// Trains on every series and forecasts each from its end and over its holdout window.
    /// - Parameters:
    ///   - season: the main season length (picks the lookback window).
    ///   - checkpoint: a file the run checkpoints to each epoch and resumes from.
    ///   - model: where to write the trained network (for `predict`).
    ///   - progress: each progress record (`{"epoch": 3, "loss": …, "validation": …}`) as JSON text.
    public func fit(_ series: [TimeSeries], horizon: Int, levels: [Double], season: Int, checkpoint: String? = nil, model: String? = nil,
                    progress: (@Sendable (String) -> Void)? = nil) throws -> Fit {
        let all = Array(Set(levels + [0.5])).sorted()
        var args = ["fit", "--horizon", String(horizon), "--season", String(season),
                    "--levels", all.map { String($0) }.joined(separator: ",")] + options
        if let checkpoint { args += ["--checkpoint", checkpoint] }
        if let model { args += ["--model", model] }
        let rows = try run(args, series: series, progress: progress)
        return Fit(forecasts: try rows.map { try $0.make($0.forecast, levels: levels) },
                   holdouts: try rows.map { try $0.make($0.holdout, levels: levels) })
    }

    /// Forecasts every series from its end with a trained network file.
    public func predict(model: String, series: [TimeSeries], levels: [Double]) throws -> [Forecast] {
        try run(["predict", "--model", model], series: series, progress: nil).map { try $0.make($0.forecast, levels: levels) }
    }

    /// Forecasts a pipeline dataset with its stored deep predictor: the Python side reads the
    /// network and the data (with its related columns) from Postgres, as training did.
    /// - Returns: the forecast per item id.
    /// - Parameter gpu: the `CUDA_VISIBLE_DEVICES` slot to run on (nil: the CPU); JAX does
    ///   not preallocate its memory, as the slot is borrowed.
    public func forecastStored(predictor: String, databaseURL: String, levels: [Double], gpu: String? = nil) throws -> [String: Forecast] {
        let env = ["DATABASE_URL": databaseURL, "CUDA_VISIBLE_DEVICES": gpu ?? "", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"]
        let rows = try run(["forecast-stored", "--predictor", predictor], series: nil, environment: env, progress: nil)
        return Dictionary(try rows.map { ($0.id, try $0.make($0.forecast, levels: levels)) }, uniquingKeysWith: { a, _ in a })
    }

    /// One output line of the Python side.
    struct Row: Decodable {
        var id: String
        var levels: [Double]
        var forecast: [[Double]]
        var holdout: [[Double]]?

        func make(_ steps: [[Double]]?, levels wanted: [Double]) throws -> Forecast {
            guard let steps else { throw ForecastInputError(item: id, message: "the deep model returned no holdout forecast") }
            var quantiles: [Double: [Double]] = [:]
            for level in wanted {
                guard let j = levels.firstIndex(where: { abs($0 - level) < 1e-9 }) else {
                    throw ForecastInputError(item: id, message: "the deep model returned no level \(level)")
                }
                quantiles[level] = steps.map { $0[j] }
            }
            let median = levels.firstIndex { abs($0 - 0.5) < 1e-9 }
            let mean = steps.map { s in median.map { s[$0] } ?? s.reduce(0, +) / Double(s.count) }
            return Forecast(mean: mean, quantiles: quantiles, method: "deep global (N-BEATS-style, quantile head)").noncrossing()
        }
    }

    func run(_ args: [String], series: [TimeSeries]?, environment extra: [String: String] = [:],
             progress: (@Sendable (String) -> Void)?) throws -> [Row] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("almanac-deep-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("series.jsonl"), output = dir.appendingPathComponent("out.jsonl")
        var inputArgs: [String] = []
        if let series {
            var text = ""
            for s in series {
                let line = try JSONSerialization.data(withJSONObject: ["id": s.id, "values": Self.filled(s.values)])
                text += String(decoding: line, as: UTF8.self) + "\n"
            }
            try text.write(to: input, atomically: true, encoding: .utf8)
            inputArgs = ["--series", input.path]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, "-m", "almanac_deep"] + args + inputArgs + ["--output", output.path]
        var env = ProcessInfo.processInfo.environment.merging(extra) { _, b in b }
        env["PYTHONPATH"] = packageRoot + (env["PYTHONPATH"].map { ":" + $0 } ?? "")
        process.environment = env
        let errPipe = Pipe()
        process.standardError = errPipe
        process.standardOutput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw ForecastInputError(message: "cannot start \(python) for the deep model: \(error.localizedDescription); install Python 3 and python/requirements.txt")
        }
        var tail: [String] = []
        var buffer = Data()
        let handle = errPipe.fileHandleForReading
        while case let chunk = handle.availableData, !chunk.isEmpty {
            buffer.append(chunk)
            while let nl = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...nl)
                if line.hasPrefix("{\"progress\": ") { progress?(String(line.dropFirst(13).dropLast())) } else { tail = Array((tail + [line]).suffix(20)) }
            }
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ForecastInputError(message: "the deep model failed (exit \(process.terminationStatus)): " + tail.joined(separator: "\n"))
        }
        let decoder = JSONDecoder()
        let rows = try String(contentsOf: output, encoding: .utf8).split(separator: "\n").map { try decoder.decode(Row.self, from: Data($0.utf8)) }
        if let series, rows.map(\.id) != series.map(\.id) {
            throw ForecastInputError(message: "the deep model answered for other series than it was given")
        }
        return rows
    }

    /// Missing values (NaN) carried forward; leading ones take the first observed value.
    static func filled(_ values: [Double]) -> [Double] {
        var last = values.first(where: \.isFinite) ?? 0
        return values.map { v in
            if v.isFinite { last = v }
            return last
        }
    }
}
