import AlmanacPostgres
import AlmanacFunctions
import AlmanacControlPlane
import AlmanacAPI
import ArgumentParser
import Logging

/// `almanac bench`: benchmarks, run as commands (never as timed tests).
public struct Bench: AsyncParsableCommand {
    /// The `bench` command's name, abstract and subcommands.
    public static let configuration = CommandConfiguration(abstract: "Benchmarks.", subcommands: [BenchRouter.self, BenchIngest.self, BenchPipeline.self, BenchAPI.self])
    /// Makes the command (ArgumentParser parses into it).
    public init() {}
}

/// A benchmark's private Postgres in `<work>/pg`, started, and a connection to it with the
/// schema migrated. The caller stops the server (`stop(mode: "immediate")`).
func benchPostgres(work: String, logger: Logger) async throws -> (EmbeddedPostgres, PostgresConnection) {
    let pg = try EmbeddedPostgres(dataDirectory: "\(work)/pg", port: EmbeddedPostgres.freePort(), logFile: "\(work)/pg.log")
    try pg.start(logger: logger)
    do {
        let db = try await PostgresConnection.connect(url: pg.url)
        try await PostgresMigrator(directory: AlmanacPaths.discover().migrations).migrate(db, logger: logger)
        return (pg, db)
    } catch {
        pg.stop(mode: "immediate")
        throw error
    }
}
