import AlmanacCore
import AlmanacForecast
import AlmanacPostgres
import AlmanacFunctions
import Foundation
import Logging

/// Which predictor a forecast uses, decided by the dataset's `models`: the statistical
/// AutoML, the deep model, or — for `champion` — whichever of the two (or their mean)
/// scored best on the same holdout windows, once both are trained on the same version.
/// The forecast function runs the plan without knowing which kind it got.
public struct ForecastPlan: Sendable {
    /// The kind that forecasts.
    public var kind: PredictorKind
    /// The predictors it needs (one, or both for the mean).
    public var statistical: Predictor?, deep: Predictor?
    /// The champion's holdout WAPE, when a selection was made.
    public var backtestWAPE: Double?

    /// The plan for an event, or nil when there is nothing to forecast with (yet).
    public static func make(for trigger: ForecastTrigger, dataset d: Dataset, in db: PostgresConnection, logger: Logger) async throws -> ForecastPlan? {
        let stat = d.trainsStatistical ? try await Predictor.latest(tenant: d.tenant, dataset: d.name, kind: .statistical, in: db) : nil
        let deep = d.trainsDeep ? try await Predictor.latest(tenant: d.tenant, dataset: d.name, kind: .deep, in: db) : nil
        if case .trained(let id) = trigger.cause {
            // Looked up within the dataset: another tenant's (or dataset's) predictor is not stored here.
            guard let named = try await Predictor.load(id: id, in: db), named.tenant == d.tenant, named.dataset == d.name else {
                throw FunctionError("predictor \(EventLimits.quoted(id)) is not stored for dataset \(d.name) of tenant \(d.tenant)", retriable: false)
            }
        } else {
            guard let newest = [stat, deep].compactMap({ $0?.datasetVersion }).max() else {
                logger.info("no predictor yet; the train functions make one", metadata: ["dataset": "\(d.name)"])
                return nil
            }
            // A predictor trained on this version already led (or will lead) to its own forecast.
            guard case .data(let version) = trigger.cause, newest < version else {
                logger.info("the predictor is as new as the data; its trained event forecasts", metadata: ["dataset": "\(d.name)"])
                return nil
            }
        }
        return choose(statistical: stat, deep: deep, logger: logger)
    }

    /// The plan from the latest predictor of each kind: both on the same version → champion
    /// selection on their holdouts; otherwise the newer one.
    public static func choose(statistical stat: Predictor?, deep: Predictor?, logger: Logger? = nil) -> ForecastPlan? {
        switch (stat, deep) {
        case (nil, nil): return nil
        case (let s?, nil): return ForecastPlan(kind: .statistical, statistical: s)
        case (nil, let p?): return ForecastPlan(kind: .deep, deep: p)
        case (let s?, let p?):
            guard s.datasetVersion == p.datasetVersion else {
                return s.datasetVersion > p.datasetVersion ? ForecastPlan(kind: .statistical, statistical: s) : ForecastPlan(kind: .deep, deep: p)
            }
            let sh = Dictionary(s.items.compactMap { i in i.holdout.map { (i.id, $0) } }, uniquingKeysWith: { a, _ in a })
            let dh = Dictionary(p.items.compactMap { i in i.holdout.map { (i.id, $0) } }, uniquingKeysWith: { a, _ in a })
            let items = sh.keys.filter { dh[$0] != nil && sh[$0]!.actual.count == dh[$0]!.actual.count }.sorted()
            guard !items.isEmpty else { return ForecastPlan(kind: .statistical, statistical: s) }
            let levels = Array(Set(sh[items[0]]!.forecast.quantiles.keys).intersection(dh[items[0]]!.forecast.quantiles.keys)).sorted()
            let champion = Champion.choose(actuals: items.map { sh[$0]!.actual }, insample: items.map { _ in [] }, seasons: [1],
                                           statistical: items.map { sh[$0]!.forecast }, deep: items.map { dh[$0]!.forecast }, levels: levels)
            logger?.info("champion selected", metadata: [
                "kind": "\(champion.kind.rawValue)", "items": "\(items.count)",
                "scores": "\(PredictorKind.allCases.map { "\($0.rawValue)=\(champion.scores[$0] ?? .nan)" }.joined(separator: " "))",
            ])
            return ForecastPlan(kind: champion.kind, statistical: s, deep: p,
                                backtestWAPE: champion.backtests[champion.kind]?.value("WAPE"))
        }
    }

    /// Forecasts the data with the plan's predictor(s).
    public func run(id: String, dataset d: Dataset, data: DatasetSeries, in db: PostgresConnection, logger: Logger) async throws -> ForecastRun {
        var statForecasts: [Forecast] = [], deepForecasts: [Forecast] = []
        if kind != .deep, let statistical {
            statForecasts = await ForecastRun.make(id: id, dataset: d, predictor: statistical, data: data).forecasts
        }
        if kind != .statistical, let deep {
            let gpu = await Self.freeGPU(in: db)
            logger.info("deep inference", metadata: ["predictor": "\(deep.id)", "gpu": "\(gpu ?? "none: CPU")"])
            deepForecasts = try Self.deepForecasts(deep, dataset: d, data: data, gpu: gpu)
        }
        let forecasts: [Forecast]
        switch kind {
        case .statistical: forecasts = statForecasts
        case .deep: forecasts = deepForecasts
        case .ensemble: forecasts = zip(statForecasts, deepForecasts).map { Champion.combine(.ensemble, statistical: $0, deep: $1) }
        }
        let predictor = (kind == .statistical ? statistical : deep)!
        return ForecastRun(id: id, tenant: d.tenant, dataset: d.name, predictorID: predictor.id, datasetVersion: data.version,
                           quantiles: d.quantiles, series: data.series, forecasts: forecasts, kind: kind, backtestWAPE: backtestWAPE)
    }

    /// A GPU slot of the inventory (`ALMANAC_GPUS`, which the launcher passes on) that no
    /// instance holds now, or nil. Deep inference borrows it without taking it from the
    /// launcher: inference is short, and JAX is told not to preallocate the GPU's memory.
    static func freeGPU(in db: PostgresConnection) async -> String? {
        let inventory = GPUInventory.detect()
        guard !inventory.slots.isEmpty else { return nil }
        let held = (try? await InstanceSlots.gpusHeld(in: db)) ?? []
        return inventory.slots.first { !held.contains($0) }
    }

    /// The deep predictor's forecasts from the latest data, per series: the Python side reads
    /// the network (`predictor_models`) and the data, related columns included, as training
    /// did; on the GPU slot given, else on the CPU.
    static func deepForecasts(_ p: Predictor, dataset d: Dataset, data: DatasetSeries, gpu: String?) throws -> [Forecast] {
        guard let url = ProcessInfo.processInfo.environment["DATABASE_URL"] else {
            throw FunctionError("DATABASE_URL is not set; the deep model reads its network and data from Postgres", retriable: false)
        }
        let byItem: [String: Forecast]
        do {
            byItem = try DeepForecaster().forecastStored(predictor: p.id, databaseURL: url, levels: d.quantiles, gpu: gpu)
        } catch let e as ForecastInputError {
            throw FunctionError("deep predictor \(p.id): \(e.message)", retriable: true)
        }
        return try data.series.map { s in
            guard let f = byItem[s.id] else { throw FunctionError("deep predictor \(p.id) returned no forecast for item \(s.id)", retriable: true) }
            return f
        }
    }
}
