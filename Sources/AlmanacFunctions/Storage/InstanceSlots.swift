import AlmanacCore
import AlmanacPostgres
import Foundation
import Logging

/// A function's `concurrency` enforced in Postgres, so that it holds across a crashed
/// `serve`: each instance takes one of the function's slots, a session advisory lock held
/// on its own connection for its whole life and released by Postgres when the process dies.
/// An instance that finds every slot taken (an orphan of an earlier `serve` still finishing)
/// waits for one before it consumes anything.
public enum InstanceSlots {
    /// The advisory-lock key of a function: a stable 32-bit hash of its name.
    static func key(_ function: String) -> Int32 {
        var h: UInt32 = 0x811c_9dc5
        for b in "almanac.fn.\(function)".utf8 { h = (h ^ UInt32(b)) &* 0x0100_0193 }
        return Int32(bitPattern: h)
    }

    /// Takes a free slot, waiting up to `patience` for one.
    /// - Returns: the slot's number, or nil when none came free in time.
    static func take(function: String, concurrency: Int, in db: PostgresConnection, patience: Duration,
                     logger: Logger) async throws -> Int? {
        let deadline = ContinuousClock.now + patience
        var warned = false
        while true {
            for slot in 0..<max(1, concurrency) {
                let rows = try await db.query("SELECT pg_try_advisory_lock($1::int, $2::int) AS ok", [Int(key(function)), slot])
                if try rows[0].decode("ok", as: Bool.self) { return slot }
            }
            if ContinuousClock.now >= deadline { return nil }
            if !warned {
                logger.warning("every instance slot is held (an instance of an earlier serve is still finishing); waiting",
                               metadata: ["concurrency": "\(concurrency)"])
                warned = true
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

extension InstanceSlots {
    /// The GPU slots running instances hold (as the launcher published them in `function_instances`).
    public static func gpusHeld(in db: PostgresConnection) async throws -> [String] {
        try await db.query("SELECT gpu FROM function_instances WHERE gpu IS NOT NULL").compactMap { $0.text("gpu") }
    }
}
