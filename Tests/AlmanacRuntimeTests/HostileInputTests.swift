import AlmanacCore
import AlmanacHTTP
@testable import AlmanacKafka
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Testing

/// Hostile input over HTTP and straight on Kafka: each case is refused with a clear error
/// naming what was wrong, or dead-lettered; nothing of a refused request reaches the bus;
/// afterwards an ordinary event is routed and handled, `/healthz` answers and no service
/// stopped.
@Suite(.serialized) struct HostileInputTests {
    /// One request the ingress must refuse.
    struct Refusal {
        var name: String
        var status: Int
        var headers: [(String, String)]
        var body: Data
        /// What the problem document's detail must say.
        var says: String
        /// The attribute it must name, if any.
        var attribute: String?
        /// The batch index it must name, if any.
        var index: Int?
    }

    static func structured(_ json: String) -> (headers: [(String, String)], body: Data) {
        ([("Content-Type", cloudEventsJSONType)], Data(json.utf8))
    }

    static func event(_ extra: String, data: String = #"{"n":1}"#, id: String = "h") -> String {
        #"{"specversion":"1.0","id":"\#(id)","source":"hostile","type":"test.hostile"\#(extra.isEmpty ? "" : "," + extra),"data":\#(data)}"#
    }

    static var refusals: [Refusal] {
        func s(_ name: String, _ json: String, status: Int = 400, says: String, attribute: String? = nil) -> Refusal {
            let r = structured(json)
            return Refusal(name: name, status: status, headers: r.headers, body: r.body, says: says, attribute: attribute)
        }
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        let deeper = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        let good = event("")
        let batchOf = { (items: [String]) in ([("Content-Type", cloudEventsBatchJSONType)], Data(("[" + items.joined(separator: ",") + "]").utf8)) }
        let oversized = batchOf(Array(repeating: good, count: EventLimits.maxBatchEvents + 1))
        let oneBad = batchOf([event("", id: "ok-0"), event("", id: "ok-1"), event(#""time":"0000-01-01T00:00:00Z""#, id: "bad-2")])
        var invalidUTF8 = Data(event("", data: #"{"s":"x"}"#).utf8)
        invalidUTF8.replaceSubrange(invalidUTF8.range(of: Data("x".utf8))!, with: [0xff, 0xfe])
        let bigData = #"{"s":""# + String(repeating: "a", count: EventLimits.maxEventBytes) + #""}"#
        return [
            s("NUL in data", event("", data: #"{"a":"x\u0000y"}"#), says: "\\u0000", attribute: "data"),
            s("NUL in a key of data", event("", data: #"{"a\u0000":1}"#), says: "\\u0000", attribute: "data"),
            s("NUL in id", event("", id: #"a\u0000b"#), says: "control character", attribute: "id"),
            s("bell in subject", event(#""subject":"s\u0007""#), says: "'subject' holds a control character", attribute: "subject"),
            s("C1 control in an extension", event(#""region":"eu\u0085""#), says: "'region' holds a control character", attribute: "region"),
            s("year 0", event(#""time":"0000-06-01T00:00:00Z""#), says: #"years 0001-9999 (UTC), got "0000-06-01T00:00:00Z""#, attribute: "time"),
            s("year 1 pushed to year 0 by its offset", event(#""time":"0001-01-01T00:00:00+01:00""#), says: "years 0001-9999", attribute: "time"),
            s("30 February", event(#""time":"2026-02-30T00:00:00Z""#), says: "RFC 3339", attribute: "time"),
            s("five-digit year", event(#""time":"10000-01-01T00:00:00Z""#), says: "RFC 3339", attribute: "time"),
            s("hour 24", event(#""time":"2026-01-01T24:00:00Z""#), says: "RFC 3339", attribute: "time"),
            s("huge subject", event(#""subject":""# + String(repeating: "s", count: 100_000) + "\""), says: "an attribute may be at most",
              attribute: "subject"),
            s("too many extensions", event((0..<40).map { #""x\#($0)":"v""# }.joined(separator: ",")), says: "at most 32 extension attributes",
              attribute: "extensions"),
            s("upper-case extension name", event(#""Region":"eu""#), says: "must be 1-20 lowercase letters or digits", attribute: "Region"),
            s("extension name over 20 characters", event(#""abcdefghijklmnopqrstuvwxyz":"v""#), says: "must be 1-20 lowercase",
              attribute: "abcdefghijklmnopqrstuvwxyz"),
            s("data nested 100 deep", event("", data: deep), says: "deeper than 64 levels", attribute: "data"),
            s("data nested 600 deep", event("", data: deeper), says: "nesting deeper than 512 levels"),
            Refusal(name: "invalid UTF-8", status: 400, headers: structured("").headers, body: invalidUTF8, says: "not valid UTF-8"),
            s("a number out of range", event("", data: #"{"n":1e400}"#), says: "out of range"),
            s("an event over 512 KiB", event("", data: bigData), says: "at most \(EventLimits.maxEventBytes) are accepted", attribute: "data"),
            Refusal(name: "a batch over the limit", status: 400, headers: oversized.0, body: oversized.1, says: "at most 1000 events"),
            Refusal(name: "one bad event in a batch", status: 400, headers: oneBad.0, body: oneBad.1, says: "batch event [2]", attribute: "time",
                    index: 2),
            s("a forged internal event", #"{"specversion":"1.0","id":"f","source":"x","type":"almanac.forecast.created","data":{}}"#,
              status: 403, says: "reserved for Almanac's own functions", attribute: "type"),
            s("a bad traceparent", event(#""traceparent":"00-xyz""#), says: "'traceparent' must be", attribute: "traceparent"),
            s("specversion 0.3", #"{"specversion":"0.3","id":"v","source":"x","type":"test.hostile"}"#, says: "'specversion' must be",
              attribute: "specversion"),
            s("an attribute that is an object", event(#""subject":{"a":1}"#), says: "must be a string, got object", attribute: "subject"),
            s("an empty id", event("", id: ""), says: "missing required attribute 'id'", attribute: "id"),
            s("data_base64 that is not base64", #"{"specversion":"1.0","id":"b","source":"x","type":"test.hostile","data_base64":"%%%"}"#,
              says: "'data_base64' must be base64", attribute: "data_base64"),
            s("another tenant's claim", event(#""tenant":"other""#), status: 403, says: "claims tenant", attribute: "tenant"),
            Refusal(name: "binary JSON that is not JSON", status: 400,
                    headers: [("ce-specversion", "1.0"), ("ce-id", "bin"), ("ce-source", "x"), ("ce-type", "test.hostile"),
                              ("Content-Type", "application/json")],
                    body: Data("{not json".utf8), says: "declared JSON", attribute: "data"),
            Refusal(name: "a percent-encoded NUL in a binary header", status: 400,
                    headers: [("ce-specversion", "1.0"), ("ce-id", "a%00b"), ("ce-source", "x"), ("ce-type", "test.hostile")],
                    body: Data(), says: "control character", attribute: "id"),
            Refusal(name: "a body over 16 MiB", status: 413, headers: structured("").headers, body: Data(count: EventIngress.maxBody + 1),
                    says: "request body over"),
        ]
    }

    @Test func everyHostileRequestIsRefusedClearlyAndTheServiceGoesOn() async throws {
        let d = try await TestDeployment(functions: [TestFunction(name: "calm", subscribe: "test.hostile")])
        let token = TenantDirectory.newToken()
        try await TenantDirectory.ensure(tenant: "acme", token: token, in: d.db)
        try await d.startControlPlane()
        let base = try await d.ingressURL()
        let client = HTTPClient()
        let auth = ("Authorization", "Bearer \(token)")
        let admin = try KafkaAdmin(configuration: d.cluster.configuration)
        func busRecords() async throws -> Int64 {
            var n: Int64 = 0
            for p in 0..<2 { n += try await admin.watermarks(topic: Outbox.busTopic, partition: Int32(p)).high }
            return n
        }

        let cases = Self.refusals
        #expect(cases.count >= 25)
        for c in cases {
            let r = try await client.send(HTTPClientRequest(method: "POST", url: "\(base)/events", headers: [auth] + c.headers, body: c.body))
            #expect(r.status == c.status, "\(c.name): status \(r.status): \(String(decoding: r.body.prefix(300), as: UTF8.self))")
            if c.status == 413 { continue }
            #expect(r.header("content-type") == "application/problem+json", "\(c.name)")
            let problem = try JSONValue(parsing: r.body)
            let detail = problem["detail"]?.stringValue ?? ""
            #expect(detail.contains(c.says), "\(c.name): \(detail.prefix(300))")
            #expect(!detail.unicodeScalars.contains { $0.value < 0x20 }, "\(c.name): the detail shows control characters escaped")
            #expect(problem["status"]?.intValue == c.status)
            if let attribute = c.attribute { #expect(problem["attribute"]?.stringValue == attribute, "\(c.name): \(problem)") }
            if let index = c.index { #expect(problem["event_index"]?.intValue == index, "\(c.name)") }
        }
        #expect(try await busRecords() == 0, "nothing of a refused request was published")

        // Straight on Kafka: each is dead-lettered by the router with the same reasons.
        let binary: [(String, String)] = [("ce_specversion", "1.0"), ("ce_source", "k"), ("ce_type", "test.hostile")]
        func headers(_ extra: [(String, String)]) -> [(String, Data)] { (binary + extra).map { ($0.0, Data($0.1.utf8)) } }
        try await d.publishRaw(value: Data(#"{"n":1}"#.utf8), headers: headers([("ce_id", "k\u{0}1")]))
        try await d.publishRaw(value: Data(#"{"n":1}"#.utf8), headers: headers([("ce_id", "k2"), ("ce_time", "0000-01-01T00:00:00Z")]))
        try await d.publishRaw(value: Data(Self.event("", data: #"{"a":"\u0000"}"#, id: "k3").utf8),
                               headers: [("content-type", Data(cloudEventsJSONType.utf8))])
        try await d.publishRaw(value: Data(#"{"n":1}"#.utf8), headers: headers([("ce_id", "k4")]) + [("ce_subject", Data([0xc3, 0x28]))])
        try await d.publishRaw(value: Data(("[" + String(repeating: "[", count: 70) + String(repeating: "]", count: 70) + "]").utf8),
                               headers: headers([("ce_id", "k5"), ("content-type", "application/json")]))
        try await d.publishRaw(value: Data(#"{"n":1}"#.utf8), headers: headers([("ce_id", "k6"), ("ce_subject", String(repeating: "s", count: 5000))]))
        try await d.publishRaw(value: Data(#"{"n":1}"#.utf8), headers: headers([("ce_id", "k7"), ("ce_bad-name", "v")]))

        // And then an ordinary event, over HTTP.
        let calm = Self.structured(Self.event("", data: #"{"n":7}"#, id: "calm-1"))
        let ok = try await client.send(HTTPClientRequest(method: "POST", url: "\(base)/events", headers: [auth] + calm.headers, body: calm.body))
        #expect(ok.status == 202)
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM test_effects WHERE event_id = 'calm-1'", atLeast: 1) == 1)
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM dead_letters WHERE stage = 'router'", atLeast: 7) == 7)
        let letters = try await d.db.query("SELECT error_code, error FROM dead_letters WHERE stage = 'router' ORDER BY source_offset, id")
        let errors = letters.map { "\($0.text("error_code") ?? ""): \($0.text("error") ?? "")" }
        for needle in ["'id' holds a control character", "years 0001-9999", "\\u0000", "is not UTF-8 text", "deeper than 64 levels",
                       "an attribute may be at most", "must be 1-20 lowercase"] {
            #expect(errors.contains { $0.contains(needle) }, "a dead letter says \(needle): \(errors)")
        }
        #expect(!errors.joined().unicodeScalars.contains { $0.value == 0 }, "dead-letter text holds no NUL")
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM event_archive WHERE id = 'calm-1'", atLeast: 1) == 1)
        #expect(try await d.count("SELECT count(*) AS n FROM event_archive") == 1, "only the ordinary event was archived")
        #expect(try await client.send(HTTPClientRequest(method: "GET", url: "\(base)/healthz")).status == 200)
        #expect(!d.planeEnded.isSet, "the control plane kept running")
        await d.shutdown()
    }

    /// Events that got past the door (an older producer, a bug) but that Postgres cannot
    /// archive fail alone: the router dead-letters each with the database's error, archives
    /// the rest of the batch, and goes on.
    @Test func anUnstorableEventFailsOnlyItself() async throws {
        let d = try await TestDeployment(functions: [TestFunction(name: "unused", subscribe: "none")])
        let router = EventRouter(manifests: [], schemas: EventSchemaRegistry(), database: d.db, producer: d.producer,
                                 source: try .init(configuration: d.cluster.configuration, groupID: "g", topics: [Outbox.busTopic], assignment: .all),
                                 logger: d.logger)
        func routed(_ e: CloudEvent) -> EventRouter.Routed {
            EventRouter.Routed(record: KafkaRecord(topic: Outbox.busTopic, partition: 0, offset: 0, key: nil, value: e.data, headers: []),
                               event: e, targets: [])
        }
        let fine = CloudEvent(id: "fine", source: "t", type: "t.x", json: ["a": 1])
        let nul = CloudEvent(id: "nul", source: "t", type: "t.x", datacontenttype: "application/json", data: Data(#"{"a":"\u0000"}"#.utf8))
        let yearZero = CloudEvent(id: "year0", source: "t", type: "t.x", time: Date(timeIntervalSince1970: -62_200_000_000), json: [:])
        let letters = try await router.archiveEach([routed(fine), routed(nul), routed(yearZero)])
        #expect(letters.map(\.eventID) == ["nul"], "the NUL event alone is refused; a year-0 time is stored as the range's first second")
        #expect(letters.first?.errorCode == "unstorable")
        #expect(letters.first?.error.contains("\\u0000 cannot be converted to text") == true, "\(letters.first?.error ?? "")")
        #expect(try await d.count("SELECT count(*) AS n FROM event_archive") == 2)
        await d.shutdown()
    }
}
