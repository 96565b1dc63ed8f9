import AlmanacCore
import AlmanacForecast
import AlmanacPostgres
import AlmanacFunctions
import Foundation

/// A stored forecast's identity and what it covers.
public struct ForecastRun: Sendable {
    /// `fc-` and the id of the event that asked for it.
    public var id: String
    /// The dataset.
    public var tenant: String, dataset: String
    /// The predictor and dataset version it came from.
    public var predictorID: String, datasetVersion: Int
    /// Its quantile levels.
    public var quantiles: [Double]
    /// Per item: the series it extends and the forecast.
    public var series: [TimeSeries], forecasts: [Forecast]
    /// Which predictor kind made it (the statistical AutoML, the deep model, or their mean).
    public var kind: PredictorKind = .statistical
    /// The holdout WAPE of the champion that made it (nil: the predictor's backtest WAPE applies).
    public var backtestWAPE: Double? = nil

    /// Forecasts every item of the data with the predictor's choice (AutoML for items the predictor has not seen).
    public static func make(id: String, dataset d: Dataset, predictor: Predictor, data: DatasetSeries) async -> ForecastRun {
        let chosen = Dictionary(predictor.items.map { ($0.id, $0.model) }, uniquingKeysWith: { a, _ in a })
        let fallback = AutoMLModel()
        let forecasts = await ForecastEngine.map(data.series) { s in
            let model: any ForecastModel = chosen[s.id] ?? fallback
            return model.forecast(s.values, horizon: d.horizon, seasons: s.frequency.defaultSeasons, levels: d.quantiles)
        }
        return ForecastRun(id: id, tenant: d.tenant, dataset: d.name, predictorID: predictor.id, datasetVersion: data.version,
                           quantiles: d.quantiles, series: data.series, forecasts: forecasts)
    }

    /// The first and last forecast timestamps.
    var bounds: (Date, Date)? {
        let ends = zip(series, forecasts).filter { !$0.1.mean.isEmpty }.map { s, f in
            (s.timestamp(at: s.values.count), s.timestamp(at: s.values.count + f.mean.count - 1))
        }
        guard let first = ends.map(\.0).min(), let last = ends.map(\.1).max() else { return nil }
        return (first, last)
    }

    /// Stores the forecast and its points (inside the commit transaction).
    public func save(trigger: String, in tx: PostgresTransaction) async throws {
        let b = bounds
        try await tx.execute("""
            INSERT INTO forecasts (id, tenant, dataset, predictor_id, dataset_version, trigger_event, quantiles, items, first_ts, last_ts, kind, backtest_wape)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            """, [id, tenant, dataset, predictorID, datasetVersion, trigger, quantiles, series.count, b?.0, b?.1, kind.rawValue, backtestWAPE])
        _ = try await tx.copyIn("COPY forecast_points (forecast_id, item_id, ts, mean, q) FROM STDIN WITH (FORMAT csv)") { w in
            var chunk = ""
            for (s, f) in zip(series, forecasts) {
                let item = CSVField.quote(s.id)
                for h in f.mean.indices {
                    let q = quantiles.map { Self.number(f.quantiles[$0]?[h] ?? f.mean[h]) }.joined(separator: ",")
                    chunk += "\(id),\(item),\(RFC3339.format(s.timestamp(at: s.values.count + h))),\(Self.number(f.mean[h])),\"{\(q)}\"\n"
                }
                if chunk.utf8.count > 1 << 16 { try await w.write(chunk); chunk = "" }
            }
            if !chunk.isEmpty { try await w.write(chunk) }
        }
    }

    /// A finite number as text (non-finite values, which models do not produce, as 0).
    static func number(_ v: Double) -> String { v.isFinite ? String(v) : "0" }
}

/// The forecast function: on `almanac.predictor.trained`, and on `almanac.dataset.imported`
/// when the dataset has a predictor, forecasts the dataset's horizon and quantiles from the
/// predictor and the latest data, stores it and emits `almanac.forecast.created`.
public struct ForecastFunction: FunctionHandler {
    /// Makes the handler.
    public init() {}

    /// Forecasts when there is a predictor.
    public func handle(_ event: CloudEvent, context: FunctionContext) async throws {
        let db = try context.database
        let trigger = try ForecastTrigger(event)
        let name = trigger.dataset
        guard let dataset = try await DatasetStore.find(tenant: event.tenant, name: name, in: db) else {
            throw FunctionError("dataset \(name) does not exist for tenant \(event.tenant)", retriable: false)
        }
        guard let plan = try await ForecastPlan.make(for: trigger, dataset: dataset, in: db, logger: context.logger) else { return }
        let data = try await DatasetSeries.load(dataset, from: db)
        let run = try await plan.run(id: "fc-" + event.id, dataset: dataset, data: data, in: db, logger: context.logger)
        context.write { tx in try await run.save(trigger: event.id, in: tx) }
        context.emit(ForecastCreated(dataset: dataset.name, forecastID: run.id, predictorID: run.predictorID, datasetVersion: data.version,
                                     items: run.series.count, quantiles: dataset.quantiles,
                                     firstTimestamp: run.bounds.map { RFC3339.format($0.0) }, lastTimestamp: run.bounds.map { RFC3339.format($0.1) },
                                     kind: run.kind.rawValue),
                     subject: dataset.name)
        context.logger.info("forecast created", metadata: ["dataset": "\(name)", "forecast": "\(run.id)", "items": "\(run.series.count)"])
    }
}

/// What a forecast is made for: new data (`almanac.dataset.imported`, forecast with the
/// current predictor when it is older than the data) or a new predictor
/// (`almanac.predictor.trained`, forecast with that one).
public struct ForecastTrigger: Sendable, Equatable {
    /// Why.
    public enum Cause: Sendable, Equatable {
        /// New data reached dataset version `version`.
        case data(version: Int)
        /// Predictor `id` was trained.
        case trained(predictorID: String)
    }

    /// The dataset to forecast.
    public var dataset: String
    /// Why.
    public var cause: Cause

    /// Reads the trigger from the event.
    /// - Throws: `FunctionError` (not retried) for another type or data that does not decode.
    public init(_ event: CloudEvent) throws {
        if event.type == PredictorTrained.eventType {
            let trained = try event.payload(PredictorTrained.self)
            self.init(dataset: trained.dataset, cause: .trained(predictorID: trained.predictorID))
        } else {
            let imported = try event.payload(DatasetImported.self)
            self.init(dataset: imported.dataset, cause: .data(version: imported.version))
        }
    }

    /// Makes a trigger.
    public init(dataset: String, cause: Cause) {
        self.dataset = dataset
        self.cause = cause
    }
}
