import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import AlmanacFunctions
import AlmanacControlPlane
import AlmanacAPI
import AlmanacBenchmarks
import ArgumentParser
import Foundation
import Logging

@main
struct Almanac: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Almanac: an event-driven runtime for forecasting pipelines, on Kafka and Postgres.",
        subcommands: [
            Up.self, Publish.self, Status.self, Tenants.self, Tokens.self, Datasets.self, DataCommand.self, S3SourcesCommand.self, WebhooksCommand.self, Query.self, DLQ.self, Replay.self, Logs.self, Bench.self, ForecastCommand.self,
            Serve.self, Broker.self, FunctionCommand.self, Setup.self, Deploy.self,
        ])
}

/// Options every client command shares.
struct ClientOptions: ParsableArguments {
    @Option(help: "The folder `almanac up` keeps its state in (its endpoints.env is read when DATABASE_URL or KAFKA_BROKERS is not set).")
    var state: String = ".almanac"

    var environment: [String: String] { Endpoints.clientEnvironment(stateDirectory: state) }

    func database() async throws -> PostgresConnection {
        guard let url = environment["DATABASE_URL"], !url.isEmpty else {
            throw ValidationError("DATABASE_URL is not set and \(state)/endpoints.env was not found: run `almanac up` first, or export DATABASE_URL.")
        }
        return try await PostgresConnection.connect(url: url, applicationName: "almanac-cli", logger: Logger(label: "almanac.cli"))
    }

    /// Runs `body` with a connection to the installation's database, closed afterwards.
    func withDatabase<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let db = try await database()
        do {
            let result = try await body(db)
            await db.close()
            return result
        } catch {
            await db.close()
            throw error
        }
    }

    func kafka() throws -> KafkaConfiguration {
        guard let k = KafkaConfiguration.fromEnvironment(environment) else {
            throw ValidationError("KAFKA_BROKERS is not set and \(state)/endpoints.env was not found: run `almanac up` first, or export KAFKA_BROKERS.")
        }
        return k
    }
}

/// Writes a line to standard error.
func warn(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Pads columns for terminal tables.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { i in all.map { $0.indices.contains(i) ? $0[i].count : 0 }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }.joined(separator: "\n")
}
