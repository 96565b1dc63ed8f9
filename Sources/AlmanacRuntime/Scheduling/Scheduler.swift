import AlmanacKafka
import AlmanacPostgres
import Foundation
import Logging

/// Relays events that functions scheduled for later (`FunctionContext.emit(…, at:)`, e.g.
/// webhook retries) once they are due: a timer service, so the functions that set the timers
/// can scale to zero in between.
final class Scheduler: @unchecked Sendable {
    let databaseURL: String
    let producer: KafkaProducer
    let logger: Logger
    let interval: Duration
    private let stopped = StopFlag()

    init(databaseURL: String, producer: KafkaProducer, logger: Logger, interval: Duration = .milliseconds(500)) {
        self.databaseURL = databaseURL
        self.producer = producer
        self.logger = logger
        self.interval = interval
    }

    func stop() { stopped.set() }

    /// Relays due events every `interval` until stopped or cancelled; reconnects after errors.
    func run() async {
        var db: PostgresConnection?
        while !stopped.isSet && !Task.isCancelled {
            do {
                if db == nil { db = try await PostgresConnection.connect(url: databaseURL, applicationName: "almanac-scheduler", logger: logger) }
                if let db { try await Outbox.relay(function: nil, scheduledOnly: true, db: db, producer: producer, logger: logger) }
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
