import AlmanacCore
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Testing

@Suite struct LaunchPlannerTests {
    typealias O = LaunchPlanner.Observation

    @Test func startsOnlyWhereWorkWaitsAndConcurrencyAllows() {
        let plan = LaunchPlanner.plan([
            O(name: "idle", lag: 0, running: 0, concurrency: 2, gpu: .none),
            O(name: "busy", lag: 5, running: 0, concurrency: 2, gpu: .none),
            O(name: "full", lag: 5, running: 2, concurrency: 2, gpu: .none),
            O(name: "covered", lag: 1, running: 1, concurrency: 3, gpu: .none),
            O(name: "more", lag: 3, running: 1, concurrency: 3, gpu: .none),
        ], freeGPUs: [])
        #expect(plan.starts == [.init(function: "busy", gpu: nil), .init(function: "more", gpu: nil)])
        #expect(plan.queued.isEmpty)
    }

    @Test func requiredGPUsTakeSlotsThenQueue() {
        let obs = [O(name: "a", lag: 1, running: 0, concurrency: 1, gpu: .required),
                   O(name: "b", lag: 1, running: 0, concurrency: 1, gpu: .required),
                   O(name: "c", lag: 1, running: 0, concurrency: 1, gpu: .required)]
        let plan = LaunchPlanner.plan(obs, freeGPUs: ["0", "1"])
        #expect(plan.starts == [.init(function: "a", gpu: "0"), .init(function: "b", gpu: "1")])
        #expect(plan.queued == ["c"])
        // First come, first served: the queued function gets the next free slot before others.
        let next = LaunchPlanner.plan([O(name: "a2", lag: 1, running: 0, concurrency: 1, gpu: .required),
                                       O(name: "c", lag: 1, running: 0, concurrency: 1, gpu: .required)],
                                      freeGPUs: ["1"], queueOrder: ["c"])
        #expect(next.starts == [.init(function: "c", gpu: "1")])
        #expect(next.queued == ["a2"])
    }

    @Test func preferredRunsOnCPUWhenNoGPUIsFree() {
        let plan = LaunchPlanner.plan([O(name: "deep", lag: 2, running: 0, concurrency: 1, gpu: .preferred)], freeGPUs: [])
        #expect(plan.starts == [.init(function: "deep", gpu: nil)])
        let withGPU = LaunchPlanner.plan([O(name: "deep", lag: 2, running: 0, concurrency: 1, gpu: .preferred)], freeGPUs: ["3"])
        #expect(withGPU.starts == [.init(function: "deep", gpu: "3")])
    }

    @Test func gpuInventoryParsing() {
        #expect(GPUInventory.detect(env: ["ALMANAC_GPUS": "0, 1,2"]).slots == ["0", "1", "2"])
        #expect(GPUInventory.detect(env: ["ALMANAC_GPUS": "none"]).slots == [])
        #expect(GPUInventory.detect(env: ["ALMANAC_GPUS": ""]).slots == [])
    }

    @Test func endpointsFileRoundTrip() {
        let e = Endpoints(kafkaBrokers: "127.0.0.1:9092", databaseURL: "postgresql://a@127.0.0.1:5432/almanac", http: "http://127.0.0.1:8787", token: "alm_x")
        let parsed = Endpoints.parse(e.envFile)
        #expect(parsed == ["KAFKA_BROKERS": "127.0.0.1:9092", "DATABASE_URL": "postgresql://a@127.0.0.1:5432/almanac",
                           "ALMANAC_HTTP": "http://127.0.0.1:8787", "ALMANAC_TOKEN": "alm_x"])
    }

    @Test func metricsRenderInPrometheusFormat() {
        let m = MetricsRegistry()
        m.increment("x_total", labels: ["function": "a\"b"], help: "X")
        m.observe("d_seconds", 0.003, labels: ["function": "a"])
        let text = m.render()
        #expect(text.contains("# TYPE x_total counter\nx_total{function=\"a\\\"b\"} 1\n"))
        #expect(text.contains("d_seconds_bucket{function=\"a\",le=\"0.005\"} 1"))
        #expect(text.contains("d_seconds_bucket{function=\"a\",le=\"0.0025\"} 0"))
        #expect(text.contains("d_seconds_count{function=\"a\"} 1"))
    }
}
