import ArgumentParser

/// `almanac bench`: benchmarks, run as commands (never as timed tests).
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmarks.", subcommands: [BenchRouter.self, BenchIngest.self, BenchPipeline.self, BenchAPI.self])
}
