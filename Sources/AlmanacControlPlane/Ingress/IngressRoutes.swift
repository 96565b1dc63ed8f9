import AlmanacFunctions
import Foundation
import Hummingbird

/// Routes another part of the system adds to the ingress's HTTP server (the `/v1` API of
/// the forecasting pipeline), so that one server and one authentication serve them all.
public protocol IngressRoutes: Sendable {
    /// Adds the routes; handlers authenticate with `ingress.authenticate` and answer
    /// refusals with `EventIngress.Problem.response`.
    func add(to router: Router<BasicRequestContext>, ingress: EventIngress)

    /// Work that runs beside the server for as long as it does (a relay from a topic into
    /// the ingress), or nil. It must return when its task is cancelled.
    func background(ingress: EventIngress) -> (@Sendable () async -> Void)?
}

extension IngressRoutes {
    /// No background work.
    public func background(ingress: EventIngress) -> (@Sendable () async -> Void)? { nil }
}

/// A token bucket per tenant: `rate` requests a second, bursts up to twice that.
public final class RateLimiter: Sendable {
    /// The default rate: 1000 requests a second per tenant (`ALMANAC_RATE_LIMIT` sets another).
    public static let defaultRate = Double(ProcessInfo.processInfo.environment["ALMANAC_RATE_LIMIT"] ?? "") ?? 1000
    /// Requests a second.
    public let rate: Double
    private let state = TenantBuckets()

    /// Makes a limiter.
    public init(rate: Double) { self.rate = rate.isFinite && rate > 0 ? rate : RateLimiter.defaultRate }

    /// Takes one request's token for `tenant`.
    /// - Returns: nil when the request may go, otherwise how many seconds until it may.
    public func take(_ tenant: String, now: Double = Date().timeIntervalSinceReferenceDate) -> Double? {
        state.take(tenant, now: now, rate: rate, burst: rate * 2)
    }
}

/// The buckets, guarded by a lock: tokens left and when they were counted, per tenant.
final class TenantBuckets: @unchecked Sendable {
    private let lock = NSLock()
    private var buckets: [String: (tokens: Double, at: Double)] = [:]

    func take(_ key: String, now: Double, rate: Double, burst: Double) -> Double? {
        lock.lock(); defer { lock.unlock() }
        var b = buckets[key] ?? (burst, now)
        b.tokens = min(burst, b.tokens + max(0, now - b.at) * rate)
        b.at = now
        defer { buckets[key] = b }
        if b.tokens >= 1 {
            b.tokens -= 1
            return nil
        }
        return (1 - b.tokens) / rate
    }
}
