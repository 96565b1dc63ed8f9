import AlmanacFunctions
import AlmanacKafka
import AlmanacPostgres
import Foundation
import Logging
import ServiceLifecycle

/// Relays events that functions scheduled for later (`FunctionContext.emit(…, at:)`, e.g.
/// webhook retries) once they are due: a timer service, so the functions that set the timers
/// can scale to zero in between. Every 30 s it also sweeps the outbox: an event sent to the
/// bus five minutes ago or more that the router never archived or dead-lettered was lost by
/// the broker, and is relayed again.
final class Scheduler: Service, @unchecked Sendable {
    let databaseURL: String
    let producer: KafkaProducer
    let logger: Logger
    let interval: Duration

    init(databaseURL: String, producer: KafkaProducer, logger: Logger, interval: Duration = .milliseconds(500)) {
        self.databaseURL = databaseURL
        self.producer = producer
        self.logger = logger
        self.interval = interval
    }

    /// How long a sent outbox row may go unseen by the router before the sweep relays it
    /// again (a router with a backlog archives late; a copy too many is skipped by id).
    static let sweepPatience = 300.0
    /// How far back the sweep looks.
    static let sweepWindow = 1800.0

    /// Relays due events every `interval` until the group shuts down (a relay in hand finishes;
    /// the wait between relays is cut short) or the task is cancelled; reconnects after errors.
    func run() async {
        await cancelWhenGracefulShutdown { await self.relayUntilCancelled() }
    }

    private func relayUntilCancelled() async {
        var db: PostgresConnection?
        var nextSweep = ContinuousClock.now + .seconds(30)
        while !Task.isCancelled {
            do {
                if db == nil { db = try await PostgresConnection.connect(url: databaseURL, applicationName: "almanac-scheduler", logger: logger) }
                if let db {
                    try await Outbox.relay(function: nil, scheduledOnly: true, db: db, producer: producer, logger: logger)
                    if ContinuousClock.now >= nextSweep {
                        // Rows sent a while ago that the bus never delivered (a broker that lost
                        // them): relayed again, scheduled retries included.
                        let rearmed = try await EventArchive.rearmUnseenOutbox(in: db, sentSince: Date().addingTimeInterval(-Self.sweepWindow),
                                                                       olderThan: Self.sweepPatience)
                        if rearmed > 0 {
                            logger.warning("outbox events the bus lost are relayed again", metadata: ["count": "\(rearmed)"])
                            try await Outbox.relay(function: nil, db: db, producer: producer, logger: logger)
                        }
                        nextSweep = ContinuousClock.now + .seconds(30)
                    }
                }
            } catch {
                logger.warning("scheduler: relaying due events failed; retrying", metadata: ["error": "\(error)"])
                await db?.close()
                db = nil
            }
            try? await Task.sleep(for: interval)
        }
        await db?.close()
    }
}
