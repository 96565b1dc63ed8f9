import ArgumentParser

struct BenchRouter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "router", abstract: "Router throughput and event-to-handler latency.")
    func run() async throws { throw ValidationError("not written yet") }
}
