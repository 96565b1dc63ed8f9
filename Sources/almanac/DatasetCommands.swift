import AlmanacForecast
import AlmanacPipeline
import ArgumentParser
import Foundation

/// `almanac datasets`: create, list and show datasets.
struct Datasets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list and show datasets.",
        discussion: "A file dropped at .almanac/drop/TENANT/NAME/<file>.csv is a data arrival for dataset NAME of TENANT.",
        subcommands: [Create.self, List.self, Show.self])

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
        @Option(help: "The tenant.") var tenant: String = "default"

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
            let db = try await client.database()
            do {
                try await DatasetStore.create(Dataset(tenant: tenant, name: name, horizon: horizon, frequency: frequency, quantiles: levels,
                                                      retrainWAPE: retrainWape, retrainFactor: retrainFactor, maxErrorRate: maxErrorRate, models: models,
                                                      maxFileBytes: maxFileBytes, maxLineBytes: maxLineBytes), in: db)
                await db.close()
            } catch let e as PipelineError {
                await db.close()
                throw ValidationError(e.message)
            }
            print("created dataset \(name) (horizon \(horizon), quantiles \(levels.sorted().map { String($0) }.joined(separator: ",")), models \(models))")
            print("drop files into \(client.state)/drop/\(tenant)/\(name)/ or publish almanac.data.arrived with {\"dataset\": \"\(name)\", \"url\": …}")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List datasets with their latest version.")
        @OptionGroup var client: ClientOptions
        @Option(help: "The tenant.") var tenant: String = "default"

        func run() async throws {
            let db = try await client.database()
            let rows = try await db.query("""
                SELECT d.name, d.horizon, coalesce(d.frequency, 'inferred') AS frequency, array_to_string(d.quantiles, ',') AS quantiles,
                       coalesce(max(v.version), 0) AS version,
                       (SELECT count(*) FROM dataset_observations(d.tenant, d.name)) AS observations
                FROM datasets d LEFT JOIN dataset_versions v ON v.tenant = d.tenant AND v.dataset = d.name
                WHERE d.tenant = $1 GROUP BY d.tenant, d.name ORDER BY d.name
                """, [tenant])
            await db.close()
            if rows.isEmpty { print("no datasets; create one with `almanac datasets create NAME --horizon H`"); return }
            print(table(["name", "horizon", "frequency", "quantiles", "version", "observations"], rows.map { r in
                ["name", "horizon", "frequency", "quantiles", "version", "observations"].map { r.text($0) ?? "" }
            }))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a dataset: settings, versions and recent ingest reports.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The dataset's name.") var name: String
        @Option(help: "The tenant.") var tenant: String = "default"

        func run() async throws {
            let db = try await client.database()
            guard let d = try await DatasetStore.find(tenant: tenant, name: name, in: db) else {
                await db.close()
                throw ValidationError("no dataset \(name) for tenant \(tenant); `almanac datasets list` shows them")
            }
            print("dataset \(d.name): horizon \(d.horizon), frequency \(d.frequency ?? "inferred"), quantiles \(d.quantiles.map { String($0) }.joined(separator: ",")), models \(d.models)")
            print("retrain when WAPE > " + (d.retrainWAPE.map { String($0) } ?? "\(d.retrainFactor) × backtest WAPE")
                  + "; reject files with more than \(Int(d.maxErrorRate * 100))% bad rows")
            let versions = try await db.query("""
                SELECT version, rows_read, rows_rejected, rows_changed, items, source, created_at FROM dataset_versions
                WHERE tenant = $1 AND dataset = $2 ORDER BY version
                """, [tenant, name])
            print("\nversions:")
            print(table(["version", "rows", "rejected", "changed", "items", "source", "at"], versions.map { r in
                ["version", "rows_read", "rows_rejected", "rows_changed", "items", "source", "created_at"].map { r.text($0) ?? "" }
            }))
            let reports = try await db.query("""
                SELECT ingest_id, accepted, coalesce(report->>'reason', '') AS reason, report->>'rows_rejected' AS rejected, created_at
                FROM ingest_reports WHERE tenant = $1 AND dataset = $2 ORDER BY created_at DESC LIMIT 10
                """, [tenant, name])
            await db.close()
            print("\nrecent ingests:")
            print(table(["ingest", "accepted", "bad rows", "reason", "at"], reports.map { r in
                [r.text("ingest_id") ?? "", r.text("accepted") == "t" ? "yes" : "no", r.text("rejected") ?? "", r.text("reason") ?? "", r.text("created_at") ?? ""]
            }))
        }
    }
}
