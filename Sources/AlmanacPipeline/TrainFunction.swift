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
/// supersedes older queued ones). Progress (items done / total) is reported through
/// `context.progress`: the log and `almanac status` show it.
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
        context.progress(["dataset": .string(dataset.name), "items_done": 0, "items_total": .number(Double(data.series.count))])
        let predictor = await Predictor.train(id: "pr-" + event.id, dataset: dataset, data: data) { done, total in
            context.progress(["dataset": .string(dataset.name), "items_done": .number(Double(done)), "items_total": .number(Double(total))])
        }
        context.write("predictor \(predictor.id)") { tx in try await predictor.save(trigger: event.id, in: tx) }
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
