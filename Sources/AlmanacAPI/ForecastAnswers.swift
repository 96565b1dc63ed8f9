import AlmanacPipeline
import AlmanacControlPlane
import Foundation
import Hummingbird

/// Rendered answers of the QueryForecast path (one item of a dataset's live forecast), kept in
/// memory so that a repeated query costs Postgres one index probe (the token and the item's
/// live forecast id) instead of the item's rows, and the server no rendering.
///
/// An answer is keyed by the forecast's id as well as tenant, dataset, item and format: a
/// forecast's points never change once written (export copies them from `forecast_points`), so
/// an entry can never be stale; a new forecast has a new id, and the probe that checks the
/// token on every request also reads which id is live. Nothing is invalidated, nothing else is
/// cached (a revoked token fails its very next request).
///
/// Bounded by bytes in two generations: entries go into the young one; when it holds half the
/// budget it becomes the old one and the previous old one is dropped; a hit in the old one is
/// moved to the young. Recently used answers stay, and the whole never exceeds the budget.
final class ForecastAnswers: @unchecked Sendable {
    /// What identifies an answer.
    struct Key: Hashable {
        var tenant: String
        var dataset: String
        var item: String
        var forecastID: String
        var csv: Bool

        /// The bytes the key itself holds.
        var size: Int { tenant.utf8.count + dataset.utf8.count + item.utf8.count + forecastID.utf8.count + 64 }
    }

    // `young`, `old` and `youngBytes` are guarded by `lock`.
    private let lock = NSLock()
    private var young: [Key: ByteBuffer] = [:]
    private var old: [Key: ByteBuffer] = [:]
    private var youngBytes = 0
    /// The most bytes (keys and bodies) both generations hold together.
    let budget: Int

    /// The default budget: 64 MiB, about 13,000 one-item JSON answers of 48 steps.
    static let defaultBudget = 64 << 20

    /// Makes an empty cache of at most `budget` bytes.
    init(budget: Int = ForecastAnswers.defaultBudget) { self.budget = max(0, budget) }

    /// The cached answer, if any.
    func answer(_ key: Key) -> ByteBuffer? {
        lock.lock(); defer { lock.unlock() }
        if let body = young[key] { return body }
        guard let body = old.removeValue(forKey: key) else { return nil }
        insertLocked(key, body)
        return body
    }

    /// Keeps an answer; one larger than a quarter of the budget is not kept.
    func keep(_ key: Key, _ body: ByteBuffer) {
        guard key.size + body.readableBytes <= budget / 4 else { return }
        lock.lock(); defer { lock.unlock() }
        guard young[key] == nil else { return }
        old[key] = nil
        insertLocked(key, body)
    }

    /// How many answers are kept, and their bytes (keys included) in the young generation.
    var counts: (entries: Int, youngBytes: Int) {
        lock.lock(); defer { lock.unlock() }
        return (young.count + old.count, youngBytes)
    }

    private func insertLocked(_ key: Key, _ body: ByteBuffer) {
        let size = key.size + body.readableBytes
        if youngBytes + size > budget / 2 {
            old = young
            young = [:]
            youngBytes = 0
        }
        young[key] = body
        youngBytes += size
    }
}
