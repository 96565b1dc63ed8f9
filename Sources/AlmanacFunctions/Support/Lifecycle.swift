import Foundation
import Logging
import ServiceLifecycle

/// Watches for the death of the process that started this one (the launcher for an instance,
/// `up` for `serve` and the broker): `run` returns when the parent changes — this process is
/// an orphan and must stop — so, run with `successTerminationBehavior: .gracefullyShutdownGroup`,
/// it shuts its group down. It ends quietly on the group's own graceful shutdown; list it
/// first in its group, so that it is shut down last and still watches while the others stop.
public struct OrphanWatch: Service {
    let parent: Int32
    let interval: Duration
    let orphaned: @Sendable () -> Void

    /// Watches `parent` (the pid the starter passed on), or the current parent when nil;
    /// `orphaned` is called once when it is gone, before `run` returns.
    public init(parent: Int32? = nil, every interval: Duration = .milliseconds(250), orphaned: @escaping @Sendable () -> Void = {}) {
        self.parent = parent ?? getppid()
        self.interval = interval
        self.orphaned = orphaned
    }

    /// Whether the parent this watch started under is gone already.
    public var isOrphaned: Bool { getppid() != parent }

    /// Polls the parent until it changes (then calls `orphaned` and returns) or the group shuts down.
    public func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                if self.isOrphaned {
                    self.orphaned()
                    return
                }
                try? await Task.sleep(for: self.interval)
            }
        }
    }

    /// The configuration that makes an orphaned process shut its group down gracefully.
    public var shutsDownGroup: ServiceGroupConfiguration.ServiceConfiguration {
        .init(service: self, successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "orphan-watch")
    }
}

/// Waits for its group's graceful shutdown, holding a group open that has nothing else to run
/// (a process whose work happens on other threads, such as the mock Kafka cluster).
public struct ShutdownWait: Service {
    /// Makes the wait.
    public init() {}

    /// Returns on graceful shutdown or cancellation.
    public func run() async {
        try? await gracefulShutdown()
    }
}

/// Services run by a `ServiceGroup` in the background of a caller that goes on with other
/// work (a benchmark, a test): `shutdown()` shuts them down gracefully and waits for them.
public final class BackgroundServices: Sendable {
    private let group: ServiceGroup
    private let task: Task<Void, Error>

    /// Starts running the services.
    public init(_ services: [any Service], logger: Logger) {
        let group = ServiceGroup(services: services, logger: logger)
        self.group = group
        task = Task { try await group.run() }
    }

    /// Shuts the group down gracefully and waits until every service returned.
    /// - Throws: the error a service failed with, if any did.
    public func shutdown() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }

    /// Waits for the group to end on its own (a service returned or failed).
    public func wait() async throws {
        try await task.value
    }
}
