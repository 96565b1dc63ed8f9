import AlmanacFunctions
import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import Foundation
import Logging
import ServiceLifecycle

/// Starts function instances on demand and lets them go (scale to zero).
///
/// Every round (each 200 ms, or at once when the router hints that it just delivered
/// events) it reads each function's lag from Kafka — high watermark minus the group's
/// committed offset, so it needs no memory of earlier rounds and works after a restart —
/// asks `LaunchPlanner` what to do, and starts processes. Instances exit by themselves
/// after their idle timeout; the launcher reaps them and frees their GPU slot.
public actor Launcher: Service {
    /// A running instance.
    public struct Instance: Sendable {
        /// Its id (`<function>-<n>`).
        public var id: String
        /// The function.
        public var function: String
        /// The process id.
        public var pid: Int32
        /// The GPU slot it holds, if any.
        public var gpu: String?
        /// When it started.
        public var startedAt: Date
    }

    /// What `status` and `/metrics` show.
    public struct Snapshot: Sendable {
        /// Running instances.
        public var instances: [Instance]
        /// Functions waiting for a GPU.
        public var gpuQueue: [String]
        /// Lag per function at the last round.
        public var lag: [String: Int64]
        /// GPU slots not in use.
        public var freeGPUs: [String]
    }

    let manifests: [FunctionManifest]
    let admin: KafkaAdmin
    let paths: AlmanacPaths
    let instanceEnvironment: [String: String]
    let logDirectory: String
    let database: PostgresConnection?
    let logger: Logger
    let metrics: MetricsRegistry
    var processes: [String: Process] = [:]
    var instances: [String: Instance] = [:]
    var freeGPUs: [String]
    /// Every GPU slot, free or not.
    let inventory: [String]
    var gpuQueue: [String] = []
    var lag: [String: Int64] = [:]
    var counter = 0
    var published = ""
    /// Functions whose instances keep dying: how many times in a row, and when the next may start.
    var crashes: [String: CrashLoop] = [:]
    /// Set by `stopAll`: instances ending now were told to.
    var stopping = false
    private let wake: AsyncStream<Set<String>>.Continuation
    private let wakes: AsyncStream<Set<String>>

    /// Makes a launcher.
    /// - Parameters:
    ///   - instanceEnvironment: variables every instance gets (`DATABASE_URL`, `KAFKA_BROKERS`, …) on top of this process's.
    ///   - logDirectory: where `<function>.log` files are written.
    ///   - database: where the instance list and GPU queue are published for `almanac status`.
    public init(manifests: [FunctionManifest], admin: KafkaAdmin, paths: AlmanacPaths, gpus: GPUInventory,
                instanceEnvironment: [String: String], logDirectory: String, database: PostgresConnection?,
                logger: Logger, metrics: MetricsRegistry = .shared) {
        self.manifests = manifests
        self.admin = admin
        self.paths = paths
        self.freeGPUs = gpus.slots
        self.inventory = gpus.slots
        self.instanceEnvironment = instanceEnvironment
        self.logDirectory = logDirectory
        self.database = database
        var l = logger
        l[metadataKey: "component"] = "launcher"
        self.logger = l
        self.metrics = metrics
        (wakes, wake) = AsyncStream.makeStream(of: Set<String>.self, bufferingPolicy: .bufferingNewest(64))
    }

    /// Asks for a round now; `functions` just received events. Those with no instance are
    /// started at once, without waiting for a lag read.
    public nonisolated func poke(_ functions: Set<String> = []) {
        if !functions.isEmpty { Task { await self.startHinted(functions) } }
        wake.yield(functions)
    }

    /// Starts an instance of each hinted function that has none (the router just gave it events).
    func startHinted(_ names: Set<String>) {
        let observations = manifests.filter { names.contains($0.name) && !isHeld($0.name) }.map { m in
            LaunchPlanner.Observation(name: m.name, lag: 1, running: running(m.name), concurrency: m.concurrency, gpu: m.gpu)
        }.filter { $0.running == 0 }
        apply(LaunchPlanner.plan(observations, freeGPUs: freeGPUs, queueOrder: gpuQueue), observed: Set(observations.map(\.name)))
    }

    func running(_ name: String) -> Int { instances.values.filter { $0.function == name }.count }

    /// Runs rounds until the group shuts down, then stops every instance gracefully
    /// (`stopAll`); a cancelled task ends the rounds without stopping the instances.
    public func run() async {
        await cancelWhenGracefulShutdown { await self.rounds() }
        if Task.isShuttingDownGracefully { await stopAll() }
    }

    /// Runs rounds until the task is cancelled.
    public func rounds() async {
        logger.info("launcher started", metadata: ["gpus": "\(freeGPUs.joined(separator: ","))"])
        try? FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        let ticker = Task { [wake] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(200))
                wake.yield([])
            }
        }
        defer { ticker.cancel() }
        for await _ in wakes {
            if Task.isCancelled { break }
            await round()
        }
    }

    /// One round: observe, plan, start.
    public func round() async {
        // Lag first (this awaits Kafka and Postgres, and other calls may run meanwhile);
        // the instance counts are read after, right before deciding.
        var pendings: [String: Int64] = [:]
        let positions = await storedPositions()
        for m in manifests {
            do {
                // Positions kept in Postgres with the effects count first, then the group's commits.
                pendings[m.name] = try await admin.lag(group: m.consumerGroup, topic: m.inputTopic, positions: positions[m.name] ?? [:])
            } catch {
                logger.debug("lag unavailable", metadata: ["function": "\(m.name)", "error": "\(error)"])
                pendings[m.name] = 0
            }
        }
        var observations: [LaunchPlanner.Observation] = []
        for m in manifests where !isHeld(m.name) {
            let pending = pendings[m.name] ?? 0
            lag[m.name] = pending
            metrics.set("almanac_function_lag", Double(pending), labels: ["function": m.name], help: "Uncommitted records in the function's input topic")
            observations.append(.init(name: m.name, lag: pending, running: running(m.name), concurrency: m.concurrency, gpu: m.gpu))
        }
        apply(LaunchPlanner.plan(observations, freeGPUs: freeGPUs, queueOrder: gpuQueue), observed: Set(manifests.map(\.name)))
        for m in manifests {
            metrics.set("almanac_function_instances", Double(running(m.name)), labels: ["function": m.name], help: "Running instances")
        }
        metrics.set("almanac_gpu_queue_length", Double(gpuQueue.count), help: "Functions waiting for a GPU")
        await publish()
    }

    /// Starts what a plan says and updates the GPU queue for the functions it looked at.
    func apply(_ plan: LaunchPlanner.Plan, observed: Set<String>) {
        for s in plan.starts {
            guard let m = manifests.first(where: { $0.name == s.function }) else { continue }
            if let gpu = s.gpu { freeGPUs.removeAll { $0 == gpu } }
            do { try start(m, gpu: s.gpu) } catch {
                if let gpu = s.gpu { freeGPUs.append(gpu) }
                logger.error("cannot start an instance", metadata: ["function": "\(m.name)", "error": "\(error)"])
            }
        }
        let newlyQueued = plan.queued.filter { !gpuQueue.contains($0) }
        for name in newlyQueued { logger.info("waiting for a GPU", metadata: ["function": "\(name)", "free_gpus": "0"]) }
        gpuQueue = gpuQueue.filter { !observed.contains($0) || plan.queued.contains($0) } + newlyQueued
    }

    /// Positions from `consumer_positions` for this Kafka cluster, by function and partition.
    func storedPositions() async -> [String: [Int32: Int64]] {
        guard let database, let cluster = try? await admin.clusterID() else { return [:] }
        return (try? await ConsumerPositions.load(cluster: cluster, topics: manifests.map(\.inputTopic), in: database)) ?? [:]
    }

    func start(_ m: FunctionManifest, gpu: String?) throws {
        counter += 1
        let id = "\(m.name)-\(getpid())-\(counter)"
        let p = Process()
        switch m.run {
        case .executable(let name, let arguments):
            p.executableURL = URL(fileURLWithPath: name.hasPrefix("/") ? name : "\(paths.binaries)/\(name)")
            p.arguments = arguments
        case .command:
            p.executableURL = URL(fileURLWithPath: "\(paths.binaries)/almanac")
            p.arguments = ["function", "exec", "--manifest", "\(m.directory)/function.yaml"]
        }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in m.environment { env[k] = v }
        for (k, v) in instanceEnvironment { env[k] = v }
        env["ALMANAC_FUNCTION_MANIFEST"] = "\(m.directory)/function.yaml"
        env["ALMANAC_INSTANCE_ID"] = id
        env["ALMANAC_LAUNCHER_PID"] = "\(getpid())"
        env["ALMANAC_ROOT"] = paths.root
        env["ALMANAC_BIN"] = paths.binaries
        env["CUDA_VISIBLE_DEVICES"] = gpu ?? ""
        env["ALMANAC_GPUS"] = inventory.isEmpty ? "none" : inventory.joined(separator: ",")  // for borrowing (deep inference)
        p.environment = env
        p.currentDirectoryURL = URL(fileURLWithPath: m.directory)
        let log = try p.redirectOutput(toLog: "\(logDirectory)/\(m.name).log")
        p.terminationHandler = { [weak self] proc in
            let status = proc.terminationStatus
            let reason = proc.terminationReason
            try? log.close()
            guard let self else { return }
            Task { await self.reaped(id: id, status: status, signalled: reason == .uncaughtSignal) }
        }
        try p.run()
        let instance = Instance(id: id, function: m.name, pid: p.processIdentifier, gpu: gpu, startedAt: Date())
        instances[id] = instance
        processes[id] = p
        metrics.increment("almanac_instances_started_total", labels: ["function": m.name], help: "Instances started")
        logger.notice("started instance", metadata: ["function": "\(m.name)", "instance": "\(id)", "pid": "\(p.processIdentifier)",
                                                   "gpu": "\(gpu ?? "none")"])
    }

    func reaped(id: String, status: Int32, signalled: Bool) async {
        guard let instance = instances.removeValue(forKey: id) else { return }
        processes[id] = nil
        if let gpu = instance.gpu { freeGPUs.append(gpu) }
        let how = signalled ? "killed by signal \(status)" : "exit \(status)"
        // A crash (a non-zero exit, a trap or abort) counts towards a crash loop; SIGKILL comes
        // from outside (an operator, a chaos test, the OOM killer) and is only logged: the
        // event it interrupted is bounded by its durable attempts either way.
        if signalled && status == SIGKILL && !stopping {
            logger.warning("instance was killed", metadata: ["instance": "\(id)", "function": "\(instance.function)", "status": "\(how)"])
        } else if (signalled || status != 0) && !stopping {
            var loop = crashes[instance.function] ?? CrashLoop()
            loop.record(how)
            crashes[instance.function] = loop
            logger.warning(loop.isLooping ? "function is crash-looping; backing off" : "instance ended abnormally", metadata: [
                "instance": "\(id)", "function": "\(instance.function)", "status": "\(how)",
                "consecutive": "\(loop.consecutive)", "next_start_in_s": "\(loop.delay)"])
            await publishCrash(instance.function, loop)
        } else {
            logger.info("instance exited", metadata: ["instance": "\(id)", "function": "\(instance.function)"])
            if crashes.removeValue(forKey: instance.function) != nil { await publishCrash(instance.function, nil) }
        }
        poke()
    }

    /// Whether a crash-looping function is waiting out its backoff.
    func isHeld(_ name: String) -> Bool {
        guard let loop = crashes[name] else { return false }
        return ContinuousClock.now < loop.heldUntil
    }

    /// Writes (or clears) a function's crash loop in `function_crashes`, for `almanac status`.
    func publishCrash(_ function: String, _ loop: CrashLoop?) async {
        guard let database else { return }
        do {
            if let loop {
                try await RuntimeBoard.recordCrashLoop(function: function, consecutive: loop.consecutive, lastStatus: loop.lastStatus,
                                                       holdSeconds: loop.delay, in: database)
            } else {
                try await RuntimeBoard.clearCrashLoop(function: function, in: database)
            }
        } catch {
            logger.warning("cannot publish a crash loop", metadata: ["function": "\(function)", "error": "\(error)"])
        }
    }

    /// The current state.
    public func snapshot() -> Snapshot {
        Snapshot(instances: instances.values.sorted { $0.id < $1.id }, gpuQueue: gpuQueue, lag: lag, freeGPUs: freeGPUs)
    }

    /// Sends SIGTERM to every instance (each finishes its event in hand) and waits up to `grace` for them to exit.
    public func stopAll(grace: Duration = .seconds(30)) async {
        stopping = true
        for p in processes.values where p.isRunning { p.terminate() }
        let deadline = ContinuousClock.now + grace
        while processes.values.contains(where: { $0.isRunning }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        for p in processes.values where p.isRunning { kill(p.processIdentifier, SIGKILL) }
    }

    /// Writes instances and the GPU queue to Postgres when they changed.
    func publish() async {
        guard let database else { return }
        let list = instances.values.sorted { $0.id < $1.id }
        let key = list.map(\.id).joined(separator: ",") + "|" + gpuQueue.joined(separator: ",")
        guard key != published else { return }
        do {
            try await RuntimeBoard.publish(instances: list, gpuQueue: gpuQueue, lags: lag, in: database)
            published = key
        } catch {
            logger.warning("cannot publish launcher state", metadata: ["error": "\(error)"])
        }
    }
}

/// Consecutive crashes (non-zero exits, traps, aborts; not SIGKILL) of one function's
/// instances, and the backoff they earn: 0.5 s after the first, doubling, at most 30 s. A
/// clean exit ends the loop.
public struct CrashLoop: Sendable {
    /// Abnormal exits in a row.
    var consecutive = 0
    /// How the last one ended (`exit 1`, `killed by signal 6`).
    var lastStatus = ""
    /// Seconds to wait before the next start.
    var delay = 0.0
    /// When the next instance may start.
    var heldUntil = ContinuousClock.now

    /// From this many exits in a row the function is reported as crash-looping.
    public static let loopingAfter = 3
    /// The longest backoff, in seconds.
    static let maxDelay = 30.0

    /// Whether `almanac status` shows it as crash-looping.
    var isLooping: Bool { consecutive >= CrashLoop.loopingAfter }

    /// Counts one more abnormal exit.
    mutating func record(_ status: String) {
        consecutive += 1
        lastStatus = status
        delay = min(CrashLoop.maxDelay, 0.5 * pow(2, Double(min(consecutive - 1, 10))))
        heldUntil = ContinuousClock.now + .milliseconds(Int(delay * 1000))
    }
}
