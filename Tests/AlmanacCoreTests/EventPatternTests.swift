import AlmanacCore
import Testing

/// One row of the pattern table: a pattern, an event document, and whether it matches.
struct PatternCase: CustomTestStringConvertible, Sendable {
    let pattern: String
    let event: String
    let matches: Bool
    var testDescription: String { "\(pattern) ~ \(event) → \(matches)" }
}

let order: JSONValue = ["type": "almanac.dataset.imported", "source": "almanac/ingest", "subject": "sales", "tenant": "acme",
                        "data": ["rows": 1200, "format": "csv", "region": "EU-West", "tags": ["daily", "retail"],
                                 "file": ["path": "drop/sales/2026-11.csv", "bytes": 0]]]

let patternCases: [PatternCase] = [
    // exact
    .init(pattern: #"{"type":["almanac.dataset.imported"]}"#, event: "order", matches: true),
    .init(pattern: #"{"type":["almanac.dataset.rejected"]}"#, event: "order", matches: false),
    .init(pattern: #"{"type":["a","almanac.dataset.imported"]}"#, event: "order", matches: true),
    .init(pattern: #"{"data":{"rows":[1200]}}"#, event: "order", matches: true),
    .init(pattern: #"{"data":{"rows":["1200"]}}"#, event: "order", matches: false),
    // all keys must match
    .init(pattern: #"{"type":["almanac.dataset.imported"],"subject":["other"]}"#, event: "order", matches: false),
    // prefix / suffix / ignore case / wildcard
    .init(pattern: #"{"type":[{"prefix":"almanac.dataset."}]}"#, event: "order", matches: true),
    .init(pattern: #"{"type":[{"prefix":"almanac.forecast."}]}"#, event: "order", matches: false),
    .init(pattern: #"{"data":{"file":{"path":[{"suffix":".csv"}]}}}"#, event: "order", matches: true),
    .init(pattern: #"{"data":{"file":{"path":[{"suffix":".gz"}]}}}"#, event: "order", matches: false),
    .init(pattern: #"{"data":{"region":[{"prefix":{"equals-ignore-case":"eu-"}}]}}"#, event: "order", matches: true),
    .init(pattern: #"{"data":{"region":[{"equals-ignore-case":"eu-west"}]}}"#, event: "order", matches: true),
    .init(pattern: #"{"data":{"file":{"path":[{"wildcard":"drop/*/2026-*.csv"}]}}}"#, event: "order", matches: true),
    .init(pattern: #"{"data":{"file":{"path":[{"wildcard":"drop/*/2025-*.csv"}]}}}"#, event: "order", matches: false),
    // anything-but
    .init(pattern: #"{"subject":[{"anything-but":"sales"}]}"#, event: "order", matches: false),
    .init(pattern: #"{"subject":[{"anything-but":["stock","returns"]}]}"#, event: "order", matches: true),
    .init(pattern: #"{"type":[{"anything-but":{"prefix":"almanac.dataset."}}]}"#, event: "order", matches: false),
    .init(pattern: #"{"type":[{"anything-but":{"suffix":".rejected"}}]}"#, event: "order", matches: true),
    .init(pattern: #"{"data":{"missing":[{"anything-but":"x"}]}}"#, event: "order", matches: false),
    // numeric ranges
    .init(pattern: #"{"data":{"rows":[{"numeric":[">",0]}]}}"#, event: "order", matches: true),
    .init(pattern: #"{"data":{"rows":[{"numeric":[">",0,"<=",1000]}]}}"#, event: "order", matches: false),
    .init(pattern: #"{"data":{"rows":[{"numeric":[">=",1200,"<",1201]}]}}"#, event: "order", matches: true),
    .init(pattern: #"{"data":{"rows":[{"numeric":["=",1200]}]}}"#, event: "order", matches: true),
    .init(pattern: #"{"data":{"format":[{"numeric":[">",0]}]}}"#, event: "order", matches: false),
    .init(pattern: #"{"data":{"file":{"bytes":[{"numeric":["<",1]}]}}}"#, event: "order", matches: true),
    // exists
    .init(pattern: #"{"data":{"rows":[{"exists":true}]}}"#, event: "order", matches: true),
    .init(pattern: #"{"data":{"nope":[{"exists":true}]}}"#, event: "order", matches: false),
    .init(pattern: #"{"data":{"nope":[{"exists":false}]}}"#, event: "order", matches: true),
    .init(pattern: #"{"data":{"rows":[{"exists":false}]}}"#, event: "order", matches: false),
    // arrays in the event: any element
    .init(pattern: #"{"data":{"tags":["retail"]}}"#, event: "order", matches: true),
    .init(pattern: #"{"data":{"tags":["weekly"]}}"#, event: "order", matches: false),
    // $or
    .init(pattern: #"{"$or":[{"type":["nope"]},{"subject":["sales"]}]}"#, event: "order", matches: true),
    .init(pattern: #"{"$or":[{"type":["nope"]},{"subject":["stock"]}]}"#, event: "order", matches: false),
    .init(pattern: #"{"tenant":["acme"],"$or":[{"data":{"rows":[{"numeric":[">",5000]}]}},{"data":{"format":["csv"]}}]}"#, event: "order", matches: true),
    .init(pattern: #"{"data":{"$or":[{"format":["parquet"]},{"region":[{"prefix":"EU"}]}]}}"#, event: "order", matches: true),
    // extensions are attributes
    .init(pattern: #"{"tenant":["other"]}"#, event: "order", matches: false),
    // an empty pattern matches everything
    .init(pattern: #"{}"#, event: "order", matches: true),
]

@Test("EventBridge-style patterns", arguments: patternCases)
func patternMatching(_ c: PatternCase) throws {
    let pattern = try EventPattern(json: c.pattern)
    #expect(pattern.matches(order) == c.matches)
}

/// Patterns that must be refused, and the path the error names.
@Test("bad patterns are refused with the path of the fault", arguments: [
    (#"{"type":"x"}"#, "type"),
    (#"{"type":[]}"#, "type"),
    (#"{"data":{"rows":[{"numeric":[">"]}]}}"#, "data.rows[0].numeric"),
    (#"{"data":{"rows":[{"numeric":["~",1]}]}}"#, "data.rows[0].numeric[0]"),
    (#"{"type":[{"prefixx":"a"}]}"#, "type[0].prefixx"),
    (#"{"$or":[]}"#, "$or"),
    (#"{"type":[{"exists":"yes"}]}"#, "type[0].exists"),
])
func badPatterns(_ input: (String, String)) {
    #expect {
        _ = try EventPattern(json: input.0)
    } throws: { error in
        (error as? PatternError)?.path == input.1
    }
}

@Test func patternsSeeEventAttributesAndData() throws {
    var e = CloudEvent(source: "almanac/ingest", type: "almanac.dataset.imported", subject: "sales", json: ["rows": 3])
    e.tenant = "acme"
    #expect(try EventPattern(json: #"{"tenant":["acme"],"subject":["sales"],"data":{"rows":[3]}}"#).matches(e))
    #expect(!(try EventPattern(json: #"{"source":[{"prefix":"almanac/train"}]}"#).matches(e)))
}
