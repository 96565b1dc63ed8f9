import AlmanacCore
import AlmanacForecast
import AlmanacPipeline
import ArgumentParser
import Foundation

/// `almanac datasets`: create, list, show and delete the tenant's datasets, through the `/v1` API.
struct Datasets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list, show and delete datasets (through the /v1 API, as the tenant of ALMANAC_TOKEN).",
        discussion: """
            Data arrives by `almanac data upload`, by a file dropped at .almanac/drop/TENANT/NAME/<file>.csv, or by an \
            almanac.data.arrived event naming an http(s) URL.
            """,
        subcommands: [Create.self, List.self, Show.self, Delete.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a dataset.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The dataset's name.") var name: String
        @Option(help: "Steps to forecast.") var horizon: Int
        @Option(help: "hourly, daily, weekly, monthly, quarterly or yearly (default: inferred).") var frequency: String?
        @Option(help: "Quantile levels, comma-separated.") var quantiles: String = "0.1,0.5,0.9"
        @Option(help: "Retrain when the live forecast's WAPE exceeds this.") var retrainWape: Double?
        @Option(help: "Retrain when the live WAPE exceeds this × the predictor's backtest WAPE.") var retrainFactor: Double = 1.5
        @Option(help: "Reject a file whose share of bad rows exceeds this.") var maxErrorRate: Double = 0.1
        @Option(help: "Refuse a file that decompresses to more bytes than this.") var maxFileBytes: Int64 = Dataset.defaultMaxFileBytes
        @Option(help: "A line longer than this many bytes is a bad row.") var maxLineBytes: Int = Dataset.defaultMaxLineBytes
        @Option(help: "statistical (AutoML), deep (the deep global model) or champion (both; the better by holdout backtest, or their mean).")
        var models: String = "statistical"

        func validate() throws {
            guard Dataset.modelChoices.contains(models) else {
                throw ValidationError("--models must be one of \(Dataset.modelChoices.joined(separator: ", ")), got \"\(models)\"")
            }
            if retrainWape != nil && retrainFactor != 1.5 { throw ValidationError("give --retrain-wape or --retrain-factor, not both") }
            if let f = frequency, Frequency(rawValue: f) == nil {
                throw ValidationError("--frequency must be one of \(Frequency.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(f)\"")
            }
            guard (0...1).contains(maxErrorRate) else { throw ValidationError("--max-error-rate must be between 0 and 1") }
        }

        func run() async throws {
            let levels = try quantiles.split(separator: ",").map { part -> Double in
                guard let q = Double(part.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--quantiles: \"\(part)\" is not a number") }
                return q
            }
            var body: [String: JSONValue] = [
                "name": .string(name), "horizon": .number(Double(horizon)), "quantiles": .array(levels.map(JSONValue.number)),
                "models": .string(models), "retrain_factor": .number(retrainFactor), "max_error_rate": .number(maxErrorRate),
                "max_file_bytes": .number(Double(maxFileBytes)), "max_line_bytes": .number(Double(maxLineBytes)),
            ]
            if let frequency { body["frequency"] = .string(frequency) }
            if let retrainWape { body["retrain_wape"] = .number(retrainWape) }
            let made = try await client.api().json("POST", "/v1/datasets", json: .object(body))
            print("created dataset \(made.cell("name")) (horizon \(made.cell("horizon")), quantiles "
                  + (made["quantiles"]?.arrayValue ?? []).compactMap(\.numberValue).map { String($0) }.joined(separator: ",") + ", models \(made.cell("models")))")
            print("upload data with `almanac data upload \(name) FILE.csv`, drop files into .almanac/drop/TENANT/\(name)/, "
                  + "or publish almanac.data.arrived with {\"dataset\": \"\(name)\", \"url\": …}")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List datasets with their latest version and live forecast.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let items = try await client.api().all("/v1/datasets")
            if items.isEmpty { print("no datasets; create one with `almanac datasets create NAME --horizon H`"); return }
            print(table(["name", "horizon", "frequency", "models", "version", "live forecast"], items.map { d in
                [d.cell("name"), d.cell("horizon"), d["frequency"] == .null ? "inferred" : d.cell("frequency"), d.cell("models"),
                 d["latest_version"] == .null ? "0" : d.cell("latest_version"), d.cell("live_forecast_id")]
            }))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a dataset: settings, versions and recent imports.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The dataset's name.") var name: String

        func run() async throws {
            let d = try await client.api().json("GET", "/v1/datasets/\(APIClient.segment(name))")
            let levels = (d["quantiles"]?.arrayValue ?? []).compactMap(\.numberValue).map { String($0) }.joined(separator: ",")
            print("dataset \(d.cell("name")): horizon \(d.cell("horizon")), frequency \(d["frequency"] == .null ? "inferred" : d.cell("frequency")), "
                  + "quantiles \(levels), models \(d.cell("models"))")
            print("retrain when WAPE > " + (d["retrain_wape"] == .null ? "\(d.cell("retrain_factor")) × backtest WAPE" : d.cell("retrain_wape"))
                  + "; reject files with more than \(Int((d["max_error_rate"]?.numberValue ?? 0) * 100))% bad rows")
            print("live forecast: \(d["live_forecast_id"] == .null ? "none yet" : d.cell("live_forecast_id"))")
            print("\nversions:")
            print(table(["version", "rows", "rejected", "changed", "items", "import", "at"], (d["versions"]?.arrayValue ?? []).map { v in
                ["version", "rows_read", "rows_rejected", "rows_changed", "items", "import_id", "created_at"].map { v.cell($0) }
            }))
            print("\nrecent imports:")
            print(table(["import", "accepted", "bad rows", "reason", "at"], (d["imports"]?.arrayValue ?? []).map { r in
                let report = r["report"] ?? .null
                return [r.cell("import_id"), r["accepted"] == .bool(true) ? "yes" : "no", report.cell("rows_rejected"), report.cell("reason"), r.cell("created_at")]
            }))
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a dataset with its data, versions, imports, predictors, forecasts and accuracy history.",
            discussion: "Files already exported and webhooks already sent stay where they went.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The dataset's name.") var name: String

        func run() async throws {
            try await client.api().send("DELETE", "/v1/datasets/\(APIClient.segment(name))")
            print("deleted dataset \(name)")
        }
    }
}

/// `almanac data`: send a dataset's data through the API and follow its import.
struct DataCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Upload a CSV (or gzip) file into a dataset and follow its import (through the /v1 API).",
        subcommands: [Upload.self, Status.self])

    struct Upload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload a file (item_id,timestamp,target_value); it is streamed, never held in memory, into the same checked ingest as a dropped file.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The dataset's name.") var dataset: String
        @Argument(help: "The file: CSV, or gzip when it ends in .gz.") var file: String
        @Flag(help: "Wait until the import is accepted, rejected or failed, and print its report.") var wait = false
        @Option(help: "With --wait: give up after this many seconds.") var timeout = 3600

        func run() async throws {
            let api = try client.api()
            let type = file.hasSuffix(".gz") ? "application/gzip" : "text/csv"
            let answer = try await api.send("POST", "/v1/datasets/\(APIClient.segment(dataset))/data", file: file, contentType: type)
            let made = (try? JSONValue(parsing: answer.body)) ?? .null
            let id = made.cell("import_id")
            print("import \(id): \(made.cell("bytes")) bytes uploaded, \(made.cell("status"))")
            guard wait else { return }
            let report = try await Status.follow(api, dataset: dataset, id: id, timeout: Double(timeout))
            try Status.printReport(report)
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an import's state (pending, accepted, rejected or failed) and its report.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The dataset's name.") var dataset: String
        @Argument(help: "The import's id (from `almanac data upload`, or an almanac.data.arrived event's id).") var id: String
        @Flag(help: "Wait while it is pending.") var wait = false
        @Option(help: "With --wait: give up after this many seconds.") var timeout = 3600

        func run() async throws {
            let api = try client.api()
            let report = wait ? try await Self.follow(api, dataset: dataset, id: id, timeout: Double(timeout))
                : try await api.json("GET", Self.path(dataset, id))
            try Self.printReport(report)
        }

        static func path(_ dataset: String, _ id: String) -> String {
            "/v1/datasets/\(APIClient.segment(dataset))/imports/\(APIClient.segment(id))"
        }

        /// Polls the import until it is no longer pending.
        static func follow(_ api: APIClient, dataset: String, id: String, timeout: Double) async throws -> JSONValue {
            let deadline = Date().addingTimeInterval(timeout)
            var pause = 0.1
            while true {
                let state = try await api.json("GET", path(dataset, id))
                if state.cell("status") != "pending" { return state }
                guard Date() < deadline else { throw APIFailure(message: "import \(id) is still pending after \(Int(timeout)) s") }
                try await Task.sleep(for: .seconds(pause))
                pause = min(2, pause * 1.5)
            }
        }

        /// Prints the state; a rejected or failed import is an error (exit status 1).
        static func printReport(_ state: JSONValue) throws {
            let report = state["report"] ?? .null
            print("import \(state.cell("import_id")) of \(state.cell("dataset")): \(state.cell("status"))"
                  + (state["version"].map { $0 == .null ? "" : " (version \(state.cell("version")))" } ?? ""))
            if report != .null {
                for key in ["rows_read", "rows_rejected", "rows_changed", "items", "reason"] where report[key] != nil && report[key] != .null {
                    print("  \(key): \(report.cell(key))")
                }
                for p in (report["problems"]?.arrayValue ?? []).prefix(20) {
                    print("  line \(p.cell("line")): \(p.cell("reason"))" + (p["item_id"].map { _ in " (item \(p.cell("item_id")))" } ?? ""))
                }
            }
            if state["error"] != nil && state["error"] != .null { print("  error: \(state.cell("error"))") }
            switch state.cell("status") {
            case "rejected", "failed": throw ExitCode(1)
            default: break
            }
        }
    }
}
