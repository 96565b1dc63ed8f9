@testable import AlmanacPipeline
@testable import AlmanacAPI
import AlmanacCore
import Foundation
import Testing

/// The forecast query's answer, written straight into text, says what the tree of values
/// it replaced said.
@Suite struct ForecastTableTests {
    @Test func jsonTextIsTheDocumentItDescribes() throws {
        let t0 = Date(timeIntervalSince1970: 1_767_225_600)
        let table = ForecastTable(forecastID: "fc-\"1\"", levels: [0.1, 0.5, 0.9], items: [
            .init(id: "A", points: [(t0, 10, [9, 10, 11.5]), (t0.addingTimeInterval(3600), 1e20, [-0.25, 0, 1e-7])]),
            .init(id: "item \\ \"two\"\n", points: [(t0, .nan, [1, 2, 3])]),
        ], more: true)
        let text = table.json(dataset: "sales", forecastID: "fc-\"1\"", next: "QQ")
        let expected: JSONValue = [
            "dataset": "sales", "forecast_id": "fc-\"1\"", "quantiles": [0.1, 0.5, 0.9], "next_cursor": "QQ",
            "items": [
                ["item_id": "A", "points": [
                    ["timestamp": "2026-01-01T00:00:00.000Z", "mean": 10, "p10": 9, "p50": 10, "p90": 11.5],
                    ["timestamp": "2026-01-01T01:00:00.000Z", "mean": .number(1e20), "p10": -0.25, "p50": 0, "p90": .number(1e-7)],
                ]],
                ["item_id": "item \\ \"two\"\n", "points": [["timestamp": "2026-01-01T00:00:00.000Z", "mean": nil, "p10": 1, "p50": 2, "p90": 3]]],
            ],
        ]
        #expect(try JSONValue(parsing: text) == expected, "\(text)")
        #expect(text == expected.serialized(), "keys in the same order as every other answer")
        let last = ForecastTable(forecastID: "f", levels: [0.5], items: [.init(id: "B", points: [(t0, 1, [1])])])
        #expect(try JSONValue(parsing: last.json(dataset: "d", forecastID: "f", next: nil))["next_cursor"] == .null)
    }
}
