import AlmanacCore
@testable import AlmanacPipeline
import Foundation
import Testing

/// The pipeline's event types and the JSON Schemas in `events/` (the wire contract) agree:
/// every `almanac.*` schema has its type and every type its schema; each schema's valid
/// example decodes into its type and encodes back to the same JSON; a value with every field
/// set passes its schema; each invalid example is refused with the field that is wrong.
@Suite struct PipelineEventTests {
    static let events = URL(fileURLWithPath: TestPaths.root + "/events")

    /// A value of each type with every optional field set.
    static let full: [any EventPayload] = [
        DataArrived(dataset: "sales", url: "s3://bucket/sales/1.csv", size: 1024, s3Source: "src-1"),
        DatasetImported(dataset: "sales", version: 3, source: "file:///d/sales/1.csv", rowsRead: 10, rowsRejected: 1, rowsChanged: 9,
                        items: 2, firstTimestamp: "2026-11-01T00:00:00Z", lastTimestamp: "2026-11-30T00:00:00Z",
                        problems: [RowProblem(line: 4, itemID: "A7", reason: "target_value \"n/a\" is not a number")]),
        DatasetRejected(dataset: "sales", source: "file:///d/sales/bad.csv", reason: "no header", rowsRead: 0, rowsRejected: 0,
                        problems: [RowProblem(line: 2, reason: "x")]),
        {
            var p = PredictorTrained(dataset: "sales", predictorID: "pr-1", datasetVersion: 3, items: 12, metrics: ["WAPE": 0.08],
                                     seconds: 4.2, reason: "first data", kind: "deep")
            p.epochs = 40
            p.device = "gpu:0"
            p.related = ["price"]
            return p
        }(),
        ForecastCreated(dataset: "sales", forecastID: "fc-1", predictorID: "pr-1", datasetVersion: 3, items: 12, quantiles: [0.1, 0.5, 0.9],
                        firstTimestamp: "2026-12-01T00:00:00Z", lastTimestamp: "2026-12-14T00:00:00Z", kind: "ensemble"),
        ForecastExported(dataset: "sales", forecastID: "fc-1", rows: 168, csv: "/e/sales/fc-1.csv", chart: "/e/sales/fc-1.svg"),
        AccuracyBreached(dataset: "sales", forecastID: "fc-1", datasetVersion: 4, points: 84, bound: 0.12, wape: 0.31, mase: 2.4, wql: 0.22),
        WebhookRetry(deliveryID: 42, attempt: 2),
    ]

    func schemaDocument(_ type: String) throws -> JSONValue {
        try JSONValue(parsing: Data(contentsOf: Self.events.appendingPathComponent("\(type).schema.json")))
    }

    func example(_ type: String, _ kind: String) throws -> Data {
        try Data(contentsOf: Self.events.appendingPathComponent("examples/\(type).\(kind).json"))
    }

    @Test func everyPipelineSchemaHasItsTypeAndEveryTypeItsSchema() throws {
        let registry = try EventSchemaRegistry(directory: Self.events)
        let schemaTypes = Set(registry.schemas.keys.filter { $0.hasPrefix("almanac.") })
        let swiftTypes = pipelineEventTypes.map { $0.eventType }
        #expect(Set(swiftTypes) == schemaTypes)
        #expect(Set(swiftTypes).count == swiftTypes.count, "one type per event type")
        #expect(Set(Self.full.map { type(of: $0).eventType }) == schemaTypes, "the test covers every type")
    }

    @Test func validExamplesDecodeIntoTheirTypesAndEncodeBackUnchanged() throws {
        let registry = try EventSchemaRegistry(directory: Self.events)
        for payloadType in pipelineEventTypes {
            let type = payloadType.eventType
            let data = try example(type, "valid")
            let event = CloudEvent(source: "test", type: type, json: try JSONValue(parsing: data))
            let decoded = try event.decode(payloadType)
            let again = decoded.json()
            #expect(again == (try JSONValue(parsing: data)), "\(type): the example survives decode and encode")
            #expect(registry.schemas[type]?.violations(of: again).isEmpty == true, "\(type): what the type encodes passes its schema")
        }
    }

    @Test func everyFieldOfEveryTypeIsOneItsSchemaNames() throws {
        let registry = try EventSchemaRegistry(directory: Self.events)
        for payload in Self.full {
            let type = Swift.type(of: payload).eventType
            let json = payload.json()
            let schema = try schemaDocument(type)
            let named = Set(schema["properties"]?.objectValue?.keys.map { $0 } ?? [])
            let required = Set(schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [])
            let fields = Set(json.objectValue?.keys.map { $0 } ?? [])
            #expect(fields.subtracting(named).isEmpty, "\(type): fields its schema does not name: \(fields.subtracting(named).sorted())")
            #expect(named.subtracting(fields).isEmpty, "\(type): schema fields the type lacks: \(named.subtracting(fields).sorted())")
            #expect(required.isSubset(of: fields))
            #expect(registry.schemas[type]?.violations(of: json).isEmpty == true, "\(type): a full value passes its schema")
        }
    }

    @Test func nonFiniteNumbersAreLeftOutNotSent() throws {
        let trained = PredictorTrained(dataset: "s", predictorID: "p", datasetVersion: 1, items: 1, metrics: ["WAPE": 0.08, "MASE": .nan]).json()
        #expect(trained["metrics"] == ["WAPE": 0.08])
        let breached = AccuracyBreached(dataset: "s", forecastID: "f", datasetVersion: 2, points: 3, bound: .infinity,
                                        wape: 0.31, mase: -.infinity, wql: .nan).json()
        #expect(breached["wql"] == nil && breached["mase"] == nil && breached["wape"] == 0.31)
        #expect(breached["bound"] == -1, "no bound is sent as -1, as the schema says")
    }

    @Test func invalidExamplesAreRefusedNamingTheField() throws {
        for payloadType in pipelineEventTypes {
            let type = payloadType.eventType
            let event = CloudEvent(id: "bad-1", source: "test", type: type, json: try JSONValue(parsing: example(type, "invalid")))
            let error = #expect(throws: EventError.self, "\(type).invalid.json is refused") { try event.decode(payloadType) }
            #expect(error?.code == .schemaViolation)
            #expect(error?.message.contains("event \"bad-1\" of type \"\(type)\": data.") == true, "\(error?.message ?? "")")
        }
        // A payload asked of another type's event says so.
        let other = CloudEvent(source: "test", type: "almanac.forecast.created", json: ["dataset": "x"])
        #expect(throws: EventError.self) { try other.decode(DatasetImported.self) }
    }
}
