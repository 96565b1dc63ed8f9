import AlmanacFunctions
import AlmanacCore
import Foundation

/// The launcher's decisions, as a pure function of what it observes: which functions to
/// start an instance of (and on which GPU), and which wait in the GPU queue.
public enum LaunchPlanner {
    /// What the launcher knows of one function.
    public struct Observation: Sendable, Equatable {
        /// The function's name.
        public var name: String
        /// Records in its input topic that its group has not committed.
        public var lag: Int64
        /// Instances running now.
        public var running: Int
        /// The most instances allowed.
        public var concurrency: Int
        /// Its GPU needs.
        public var gpu: FunctionManifest.GPURequirement

        /// Makes an observation.
        public init(name: String, lag: Int64, running: Int, concurrency: Int, gpu: FunctionManifest.GPURequirement) {
            self.name = name
            self.lag = lag
            self.running = running
            self.concurrency = concurrency
            self.gpu = gpu
        }
    }

    /// What to do now.
    public struct Plan: Sendable, Equatable {
        /// Instances to start: the function, and the GPU slot it gets (nil: CPU only).
        public var starts: [Start]
        /// Functions that need an instance but wait for a GPU, in the order they asked.
        public var queued: [String]
    }

    /// One instance to start.
    public struct Start: Sendable, Equatable {
        /// The function.
        public var function: String
        /// The GPU slot (`CUDA_VISIBLE_DEVICES` value), or nil for CPU.
        public var gpu: String?
    }

    /// Plans one round. A function gets one more instance when it has more pending records
    /// than running instances and is under its concurrency; `required` GPU functions take a
    /// free slot or queue; `preferred` take a free slot or run on CPU. Functions earlier in
    /// `queueOrder` get GPUs first, so the queue is first come, first served.
    public static func plan(_ observations: [Observation], freeGPUs: [String], queueOrder: [String] = []) -> Plan {
        var free = freeGPUs
        var starts: [Start] = []
        var queued: [String] = []
        let rank = Dictionary(queueOrder.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let ordered = observations.sorted { (rank[$0.name] ?? Int.max, $0.name) < (rank[$1.name] ?? Int.max, $1.name) }
        for o in ordered where o.lag > Int64(o.running) && o.running < o.concurrency {
            switch o.gpu {
            case .none:
                starts.append(Start(function: o.name, gpu: nil))
            case .preferred:
                starts.append(Start(function: o.name, gpu: free.isEmpty ? nil : free.removeFirst()))
            case .required:
                if free.isEmpty { queued.append(o.name) } else { starts.append(Start(function: o.name, gpu: free.removeFirst())) }
            }
        }
        return Plan(starts: starts, queued: queued)
    }
}
