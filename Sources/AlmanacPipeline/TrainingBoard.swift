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

    /// Records that the train function started training `total` items for an event.
    public static func started(tenant: String, dataset: String, eventID: String, total: Int, at: Date, in db: PostgresConnection) async throws {
        try await db.execute("""
            INSERT INTO training_progress (tenant, dataset, event_id, done, total, started_at) VALUES ($1, $2, $3, 0, $4, $5)
            ON CONFLICT (tenant, dataset) DO UPDATE SET event_id = $3, done = 0, total = $4, started_at = $5, updated_at = now()
            """, [tenant, dataset, eventID, total, at])
    }

    /// Records items done so far.
    public static func progressed(tenant: String, dataset: String, done: Int, in db: PostgresConnection) async throws {
        try await db.execute("UPDATE training_progress SET done = $3, updated_at = now() WHERE tenant = $1 AND dataset = $2",
                             [tenant, dataset, done])
    }

    /// Ends the event's progress row (in the commit transaction that stores the predictor).
    public static func finished(tenant: String, dataset: String, eventID: String, in tx: any PostgresExecutor) async throws {
        try await tx.exec("DELETE FROM training_progress WHERE tenant = $1 AND dataset = $2 AND event_id = $3", [tenant, dataset, eventID])
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
