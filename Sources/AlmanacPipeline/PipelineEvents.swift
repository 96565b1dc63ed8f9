import AlmanacCore
import Foundation

// The pipeline's events as types: one `EventPayload` per schema in `events/`, with the
// schema's field names. Handlers read them with `event.decode(T.self)` and stage them with
// `context.emit(T(…), subject:)`; `PipelineEventTests` keeps every type and its schema's
// examples in agreement.

/// `almanac.data.arrived`: a data file for a dataset is at `url` (a tenant's publication, the
/// drop folder watcher's, or an S3 notification's).
public struct DataArrived: EventPayload, Equatable {
    /// The CloudEvents type.
    public static let eventType = "almanac.data.arrived"
    /// The dataset the file belongs to.
    public var dataset: String
    /// Where the file is: `file://` (within the tenant's drop folder), `http(s)://` or `s3://`.
    public var url: String
    /// The file's size in bytes, when the announcer knows it.
    public var size: Int?
    /// The S3 source rule that announced it, for S3 notifications.
    public var s3Source: String?

    enum CodingKeys: String, CodingKey {
        case dataset, url, size
        case s3Source = "s3_source"
    }

    /// Makes a payload.
    public init(dataset: String, url: String, size: Int? = nil, s3Source: String? = nil) {
        self.dataset = dataset
        self.url = url
        self.size = size
        self.s3Source = s3Source
    }
}

/// One row of a data file that was refused, as events report it.
public struct RowProblem: Codable, Sendable, Equatable {
    /// The line in the file (the header is line 1).
    public var line: Int
    /// The row's item, when it has one.
    public var itemID: String?
    /// What is wrong with it.
    public var reason: String

    enum CodingKeys: String, CodingKey {
        case line, reason
        case itemID = "item_id"
    }

    /// Makes a problem.
    public init(line: Int, itemID: String? = nil, reason: String) {
        self.line = line
        self.itemID = itemID
        self.reason = reason
    }
}

/// `almanac.dataset.imported`: a file became dataset version `version` (or changed nothing).
public struct DatasetImported: EventPayload, Equatable {
    /// The CloudEvents type.
    public static let eventType = "almanac.dataset.imported"
    /// The dataset.
    public var dataset: String
    /// The dataset's version after the import.
    public var version: Int
    /// The file's location.
    public var source: String
    /// Data rows read.
    public var rowsRead: Int
    /// Rows refused.
    public var rowsRejected: Int
    /// Rows that were new or changed a value.
    public var rowsChanged: Int
    /// Items in the file.
    public var items: Int
    /// The first timestamp in the file (RFC 3339).
    public var firstTimestamp: String?
    /// The last timestamp in the file (RFC 3339).
    public var lastTimestamp: String?
    /// The first refused rows (at most 20).
    public var problems: [RowProblem]

    enum CodingKeys: String, CodingKey {
        case dataset, version, source, items, problems
        case rowsRead = "rows_read", rowsRejected = "rows_rejected", rowsChanged = "rows_changed"
        case firstTimestamp = "first_timestamp", lastTimestamp = "last_timestamp"
    }

    /// Makes a payload.
    public init(dataset: String, version: Int, source: String, rowsRead: Int, rowsRejected: Int, rowsChanged: Int, items: Int,
                firstTimestamp: String? = nil, lastTimestamp: String? = nil, problems: [RowProblem] = []) {
        self.dataset = dataset
        self.version = version
        self.source = source
        self.rowsRead = rowsRead
        self.rowsRejected = rowsRejected
        self.rowsChanged = rowsChanged
        self.items = items
        self.firstTimestamp = firstTimestamp
        self.lastTimestamp = lastTimestamp
        self.problems = problems
    }
}

/// `almanac.dataset.rejected`: a file was refused as a whole; the dataset did not change.
public struct DatasetRejected: EventPayload, Equatable {
    /// The CloudEvents type.
    public static let eventType = "almanac.dataset.rejected"
    /// The dataset.
    public var dataset: String
    /// The file's location.
    public var source: String
    /// Why the file was refused.
    public var reason: String
    /// Data rows read before it was refused.
    public var rowsRead: Int
    /// Rows refused.
    public var rowsRejected: Int
    /// The first refused rows (at most 20).
    public var problems: [RowProblem]

    enum CodingKeys: String, CodingKey {
        case dataset, source, reason, problems
        case rowsRead = "rows_read", rowsRejected = "rows_rejected"
    }

    /// Makes a payload.
    public init(dataset: String, source: String, reason: String, rowsRead: Int, rowsRejected: Int, problems: [RowProblem] = []) {
        self.dataset = dataset
        self.source = source
        self.reason = reason
        self.rowsRead = rowsRead
        self.rowsRejected = rowsRejected
        self.problems = problems
    }
}

/// `almanac.predictor.trained`: a predictor was trained and stored.
public struct PredictorTrained: EventPayload, Equatable {
    /// The CloudEvents type.
    public static let eventType = "almanac.predictor.trained"
    /// The dataset.
    public var dataset: String
    /// The stored predictor.
    public var predictorID: String
    /// The dataset version it was trained on.
    public var datasetVersion: Int
    /// Items it covers.
    public var items: Int
    /// Backtest metrics by name (finite values only).
    public var metrics: [String: Double]
    /// Seconds the training took.
    public var seconds: Double?
    /// Why it was trained (`first data`, `accuracy breached`).
    public var reason: String?
    /// `statistical` or `deep`.
    public var kind: String?
    /// Epochs trained (deep).
    public var epochs: Int?
    /// Where it trained (deep: `gpu:<slot>` or `cpu`).
    public var device: String?
    /// The related columns the deep model reads.
    public var related: [String]?

    enum CodingKeys: String, CodingKey {
        case dataset, items, metrics, seconds, reason, kind, epochs, device, related
        case predictorID = "predictor_id", datasetVersion = "dataset_version"
    }

    /// Makes a payload; non-finite metrics are left out (JSON has no NaN).
    public init(dataset: String, predictorID: String, datasetVersion: Int, items: Int, metrics: [String: Double],
                seconds: Double? = nil, reason: String? = nil, kind: String? = nil) {
        self.dataset = dataset
        self.predictorID = predictorID
        self.datasetVersion = datasetVersion
        self.items = items
        self.metrics = metrics.filter { $0.value.isFinite }
        self.seconds = seconds
        self.reason = reason
        self.kind = kind
    }
}

/// `almanac.forecast.created`: a forecast was made and stored.
public struct ForecastCreated: EventPayload, Equatable {
    /// The CloudEvents type.
    public static let eventType = "almanac.forecast.created"
    /// The dataset.
    public var dataset: String
    /// The stored forecast.
    public var forecastID: String
    /// The predictor it came from.
    public var predictorID: String
    /// The dataset version it starts after.
    public var datasetVersion: Int
    /// Items forecast.
    public var items: Int
    /// The quantile levels it holds.
    public var quantiles: [Double]
    /// Its first timestamp (RFC 3339).
    public var firstTimestamp: String?
    /// Its last timestamp (RFC 3339).
    public var lastTimestamp: String?
    /// `statistical`, `deep` or `ensemble`.
    public var kind: String?

    enum CodingKeys: String, CodingKey {
        case dataset, items, quantiles, kind
        case forecastID = "forecast_id", predictorID = "predictor_id", datasetVersion = "dataset_version"
        case firstTimestamp = "first_timestamp", lastTimestamp = "last_timestamp"
    }

    /// Makes a payload.
    public init(dataset: String, forecastID: String, predictorID: String, datasetVersion: Int, items: Int, quantiles: [Double],
                firstTimestamp: String? = nil, lastTimestamp: String? = nil, kind: String? = nil) {
        self.dataset = dataset
        self.forecastID = forecastID
        self.predictorID = predictorID
        self.datasetVersion = datasetVersion
        self.items = items
        self.quantiles = quantiles
        self.firstTimestamp = firstTimestamp
        self.lastTimestamp = lastTimestamp
        self.kind = kind
    }
}

/// `almanac.forecast.exported`: a forecast is in the latest-forecast table and its files written.
public struct ForecastExported: EventPayload, Equatable {
    /// The CloudEvents type.
    public static let eventType = "almanac.forecast.exported"
    /// The dataset.
    public var dataset: String
    /// The exported forecast.
    public var forecastID: String
    /// Rows written.
    public var rows: Int
    /// The CSV file's path.
    public var csv: String
    /// The chart's path.
    public var chart: String

    enum CodingKeys: String, CodingKey {
        case dataset, rows, csv, chart
        case forecastID = "forecast_id"
    }

    /// Makes a payload.
    public init(dataset: String, forecastID: String, rows: Int, csv: String, chart: String) {
        self.dataset = dataset
        self.forecastID = forecastID
        self.rows = rows
        self.csv = csv
        self.chart = chart
    }
}

/// `almanac.accuracy.breached`: new actuals put the live forecast's error past its bound.
public struct AccuracyBreached: EventPayload, Equatable {
    /// The CloudEvents type.
    public static let eventType = "almanac.accuracy.breached"
    /// The dataset.
    public var dataset: String
    /// The forecast measured.
    public var forecastID: String
    /// The dataset version whose actuals it was measured on.
    public var datasetVersion: Int
    /// Points measured.
    public var points: Int
    /// The WAPE bound it broke (-1 when there is none).
    public var bound: Double
    /// Its WAPE on the new actuals.
    public var wape: Double?
    /// Its MASE on the new actuals.
    public var mase: Double?
    /// Its mean weighted quantile loss on the new actuals.
    public var wql: Double?

    enum CodingKeys: String, CodingKey {
        case dataset, points, bound, wape, mase, wql
        case forecastID = "forecast_id", datasetVersion = "dataset_version"
    }

    /// Makes a payload; non-finite measures are left out.
    public init(dataset: String, forecastID: String, datasetVersion: Int, points: Int, bound: Double,
                wape: Double? = nil, mase: Double? = nil, wql: Double? = nil) {
        self.dataset = dataset
        self.forecastID = forecastID
        self.datasetVersion = datasetVersion
        self.points = points
        self.bound = bound.isFinite ? bound : -1
        self.wape = wape.flatMap { $0.isFinite ? $0 : nil }
        self.mase = mase.flatMap { $0.isFinite ? $0 : nil }
        self.wql = wql.flatMap { $0.isFinite ? $0 : nil }
    }
}

/// `almanac.webhook.retry`: a timer for the next attempt at one webhook delivery.
public struct WebhookRetry: EventPayload, Equatable {
    /// The CloudEvents type.
    public static let eventType = "almanac.webhook.retry"
    /// The delivery to attempt.
    public var deliveryID: Int
    /// Which attempt it will be.
    public var attempt: Int?

    enum CodingKeys: String, CodingKey {
        case deliveryID = "delivery_id", attempt
    }

    /// Makes a payload.
    public init(deliveryID: Int, attempt: Int? = nil) {
        self.deliveryID = deliveryID
        self.attempt = attempt
    }
}

extension IngestReport {
    /// The first refused rows (at most 20), as events report them.
    var eventProblems: [RowProblem] {
        problems.prefix(20).map { RowProblem(line: $0.line, itemID: $0.item, reason: $0.reason) }
    }
}

/// Every event type of the pipeline, for tools and the test that keeps them in agreement with `events/`.
public let pipelineEventTypes: [any EventPayload.Type] = [
    DataArrived.self, DatasetImported.self, DatasetRejected.self, PredictorTrained.self,
    ForecastCreated.self, ForecastExported.self, AccuracyBreached.self, WebhookRetry.self,
]
