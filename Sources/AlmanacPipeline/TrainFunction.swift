import AlmanacCore
import AlmanacForecast
import AlmanacPostgres
import AlmanacFunctions
import Foundation
import Logging

/// The train function: on `almanac.dataset.imported` for a dataset without a predictor, and on
/// `almanac.accuracy.breached`, runs AutoML with backtests over the dataset's latest version,
/// stores the predictor and emits `almanac.predictor.trained`.
///
/// One training per dataset at a time (the function's concurrency is 1, and a request finds
/// the work already done when a predictor exists for the latest version: a newer request
/// supersedes older queued ones). Progress (items done / total) goes to the log and to
/// `training_progress`, which `almanac status` shows.
public struct TrainFunction: FunctionHandler {
    /// Makes the handler.
    public init() {}

    /// Trains when due.
    public func handle(_ event: CloudEvent, context: FunctionContext) async throws {
        let db = try context.database
        // Trained for new data, or when the live forecast's accuracy broke its bound.
        let breached = event.type == AccuracyBreached.eventType
        let name = breached ? try event.payload(AccuracyBreached.self).dataset : try event.payload(DatasetImported.self).dataset
        guard let dataset = try await DatasetStore.find(tenant: event.tenant, name: name, in: db) else {
            throw FunctionError("dataset \(name) does not exist for tenant \(event.tenant)", retriable: false)
        }
        guard dataset.trainsStatistical else {
            context.logger.info("dataset \(name) forecasts with the deep model only; train-deep trains it", metadata: ["dataset": "\(name)"])
            return
        }
        let version = try await DatasetSeries.latestVersion(of: dataset, in: db)
        let newest = try await Predictor.newestVersion(tenant: dataset.tenant, dataset: dataset.name, kind: .statistical, in: db)
        if !breached, newest != nil {
            context.logger.info("predictor exists; the forecast function forecasts with it", metadata: ["dataset": "\(name)"])
            return
        }
        if let newest, newest >= version {
            context.logger.info("a predictor for the latest version exists; request superseded",
                                metadata: ["dataset": "\(name)", "version": "\(version)"])
            return
        }
        let data = try await DatasetSeries.load(dataset, from: db)
        guard !data.series.isEmpty else { throw FunctionError("dataset \(name) has no observations", retriable: false) }
        let started = Date()
        try await TrainingBoard.started(tenant: dataset.tenant, dataset: dataset.name, eventID: event.id, total: data.series.count,
                                        at: started, in: db)
        let reporter = ProgressReporter(dataset: dataset, eventID: event.id, database: db, logger: context.logger)
        let predictor = await Predictor.train(id: "pr-" + event.id, dataset: dataset, data: data) { done, total in
            reporter.update(done: done, total: total)
        }
        await reporter.finish()
        context.write { tx in
            try await predictor.save(trigger: event.id, in: tx)
            try await TrainingBoard.finished(tenant: dataset.tenant, dataset: dataset.name, eventID: event.id, in: tx)
        }
        context.emit(PredictorTrained(dataset: dataset.name, predictorID: predictor.id, datasetVersion: data.version,
                                      items: predictor.items.count, metrics: predictor.metrics,
                                      seconds: (Date().timeIntervalSince(started) * 10).rounded() / 10,
                                      reason: breached ? "accuracy breached" : "first data", kind: "statistical"),
                     subject: dataset.name)
        context.logger.info("predictor trained", metadata: [
            "dataset": "\(name)", "items": "\(predictor.items.count)", "wape": "\(predictor.metrics["WAPE"] ?? .nan)",
        ])
    }
}

/// Logs training progress and writes it to `training_progress` about once a second, through
/// the handler's own connection (`context.database`; its statements are serialised, and each
/// progress row commits on its own: progress is not an effect of the event).
final class ProgressReporter: @unchecked Sendable {
    private let lock = NSLock()
    private var pending: (Int, Int)?
    private var task: Task<Void, Never>?
    let dataset: Dataset, eventID: String, database: PostgresConnection
    let logger: Logger

    init(dataset: Dataset, eventID: String, database: PostgresConnection, logger: Logger) {
        self.dataset = dataset
        self.eventID = eventID
        self.database = database
        self.logger = logger
        task = Task { [weak self] in await self?.loop() }
    }

    func update(done: Int, total: Int) {
        lock.withLock { pending = (done, total) }
    }

    private func loop() async {
        let db = database
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            guard let (done, total) = lock.withLock({ () -> (Int, Int)? in defer { pending = nil }; return pending }) else { continue }
            logger.info("training", metadata: ["dataset": "\(dataset.name)", "items_done": "\(done)", "items_total": "\(total)"])
            try? await TrainingBoard.progressed(tenant: dataset.tenant, dataset: dataset.name, done: done, in: db)
        }
    }

    func finish() async {
        task?.cancel()
        await task?.value
    }
}
