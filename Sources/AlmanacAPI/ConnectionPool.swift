import AlmanacPipeline
import AlmanacControlPlane
import AlmanacPostgres
import Foundation

/// A fixed set of Postgres sessions that requests take in turn, so that concurrent API
/// requests do not queue behind one connection.
final class ConnectionPool: @unchecked Sendable {
    // `counter` is guarded by `lock`.
    private let connections: [PostgresConnection]
    private let lock = NSLock()
    private var counter = 0

    private init(connections: [PostgresConnection]) { self.connections = connections }

    /// Opens `size` sessions (at least one).
    static func connect(url: String, size: Int, applicationName: String) async throws -> ConnectionPool {
        var made: [PostgresConnection] = []
        for _ in 0..<max(1, size) { made.append(try await PostgresConnection.connect(url: url, applicationName: applicationName)) }
        return ConnectionPool(connections: made)
    }

    /// Closes every session.
    func close() async { for c in connections { await c.close() } }

    /// The next session, round-robin.
    func next() -> PostgresConnection {
        lock.lock(); defer { lock.unlock() }
        counter &+= 1
        return connections[counter % connections.count]
    }
}
