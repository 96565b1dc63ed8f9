import AlmanacPostgres
import Foundation

/// Trainings in progress, as the train functions report them (`training_progress` for the
/// statistical AutoML, `deep_training` for the deep trainer), for `almanac status`.
public enum TrainingBoard {
    /// A statistical training in progress.
    public struct Statistical: Sendable, Equatable {
        /// The tenant.
        public var tenant: String
        /// The dataset.
        public var dataset: String
        /// Items trained so far.
        public var done: Int
        /// Items in all.
        public var total: Int
        /// When it started.
        public var started: String
        /// When it last reported.
        public var updated: String
    }

    /// A deep training in progress.
    public struct Deep: Sendable, Equatable {
        /// The tenant.
        public var tenant: String
        /// The dataset.
        public var dataset: String
        /// Where it trains.
        public var device: String
        /// The ensemble member in training, and how many there are.
        public var member: Int, members: Int
        /// The epoch, and the most it may take.
        public var epoch: Int, maxEpochs: Int
        /// The last training and validation losses (five decimals).
        public var loss: String, validation: String
        /// When it started and last reported.
        public var started: String, updated: String
    }

    /// Statistical trainings in progress, oldest first.
    public static func statistical(in db: PostgresConnection) async throws -> [Statistical] {
        try await db.query("""
            SELECT tenant, dataset, done, total, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS') AS started,
                   to_char(updated_at, 'HH24:MI:SS') AS updated FROM training_progress ORDER BY started_at
            """).map { r in
            Statistical(tenant: try r.decode("tenant"), dataset: try r.decode("dataset"), done: try r.decode("done"), total: try r.decode("total"),
                        started: r.text("started") ?? "", updated: r.text("updated") ?? "")
        }
    }

    /// Deep trainings in progress, oldest first.
    public static func deep(in db: PostgresConnection) async throws -> [Deep] {
        try await db.query("""
            SELECT tenant, dataset, device, member, members, epoch, max_epochs, round(loss::numeric, 5)::text AS loss,
                   round(validation::numeric, 5)::text AS validation, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS') AS started,
                   to_char(updated_at, 'HH24:MI:SS') AS updated FROM deep_training ORDER BY started_at
            """).map { r in
            Deep(tenant: try r.decode("tenant"), dataset: try r.decode("dataset"), device: r.text("device") ?? "",
                 member: try r.decodeIfPresent("member", as: Int.self) ?? 0, members: try r.decodeIfPresent("members", as: Int.self) ?? 0,
                 epoch: try r.decodeIfPresent("epoch", as: Int.self) ?? 0, maxEpochs: try r.decodeIfPresent("max_epochs", as: Int.self) ?? 0,
                 loss: r.text("loss") ?? "", validation: r.text("validation") ?? "", started: r.text("started") ?? "", updated: r.text("updated") ?? "")
        }
    }
}
