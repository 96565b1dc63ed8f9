import AlmanacCore
import Foundation
import Testing

@Suite struct CloudEventBindingTests {
    func sample() -> CloudEvent {
        var e = CloudEvent(id: "ev-1", source: "almanac/ingest", type: "almanac.dataset.imported", subject: "sales",
                           time: RFC3339.parse("2026-11-23T10:00:00.250Z"), json: ["rows": 12, "ok": true])
        e.tenant = "acme"
        e.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        e.causationID = "ev-0"
        e.correlationID = "ev-0"
        return e
    }

    @Test func kafkaBinaryRoundTrip() throws {
        let e = sample()
        let record = e.kafkaBinary()
        #expect(record.key == Data("sales".utf8))
        #expect(record.headers.contains { $0.0 == "ce_id" && $0.1 == Data("ev-1".utf8) })
        #expect(record.headers.contains { $0.0 == "content-type" && $0.1 == Data("application/json".utf8) })
        let back = try CloudEvent(kafka: record)
        #expect(back == e)
    }

    @Test func kafkaStructuredModeIsRead() throws {
        let e = sample()
        let value = e.structuredJSON().serializedData()
        let record = KafkaEventRecord(key: nil, value: value, headers: [("content-type", Data("application/cloudevents+json; charset=utf-8".utf8))])
        #expect(try CloudEvent(kafka: record) == e)
        // Structured without a content-type header (some producers omit it).
        #expect(try CloudEvent(kafka: KafkaEventRecord(key: nil, value: value, headers: [])) == e)
    }

    @Test func binaryDataMayBeAnyBytes() throws {
        let e = CloudEvent(id: "b", source: "s", type: "t", time: nil, datacontenttype: "application/octet-stream", data: Data([0, 1, 2, 255]))
        #expect(try CloudEvent(kafka: e.kafkaBinary()) == e)
        let structured = e.structuredJSON()
        #expect(structured["data_base64"]?.stringValue == "AAEC/w==")
        #expect(try CloudEvent(structuredJSON: structured) == e)
    }

    @Test func httpModes() throws {
        let e = sample()
        let (headers, body) = e.httpBinary()
        #expect(try CloudEvent.fromHTTP(headers: headers, body: body) == [e])
        let structured = try CloudEvent.fromHTTP(headers: [("Content-Type", "application/cloudevents+json")], body: e.structuredJSON().serializedData())
        #expect(structured == [e])
        var e2 = e
        e2.id = "ev-2"
        let batch = JSONValue.array([e.structuredJSON(), e2.structuredJSON()]).serializedData()
        #expect(try CloudEvent.fromHTTP(headers: [("content-type", "application/cloudevents-batch+json")], body: batch) == [e, e2])
    }

    @Test("events missing required attributes are rejected, naming them", arguments: [
        (#"{"specversion":"1.0","source":"s","type":"t"}"#, "'id'"),
        (#"{"specversion":"1.0","id":"1","type":"t"}"#, "'source'"),
        (#"{"id":"1","source":"s","type":"t"}"#, "'specversion'"),
        (#"{"specversion":"1.0","id":"1","source":"s"}"#, "'type'"),
        (#"{"specversion":"0.3","id":"1","source":"s","type":"t"}"#, "\"1.0\""),
        (#"{"specversion":"1.0","id":"1","source":"s","type":"t","time":"yesterday"}"#, "RFC 3339"),
        (#"{"specversion":"1.0","id":"1","source":"s","type":"t","traceparent":"nope"}"#, "traceparent"),
        (#"{"specversion":"1.0","id":"1","source":"s","type":"t","Bad-Name":"x"}"#, "extension name"),
    ])
    func invalidEvents(_ input: (String, String)) {
        #expect {
            _ = try CloudEvent(structured: Data(input.0.utf8))
        } throws: { error in
            guard let e = error as? EventError else { return false }
            return e.code == .invalidEvent && e.message.contains(input.1)
        }
    }

    @Test func undecodableRecords() {
        for record in [KafkaEventRecord(key: nil, value: Data("not json".utf8), headers: []),
                       KafkaEventRecord(key: nil, value: nil, headers: []),
                       KafkaEventRecord(key: nil, value: Data("[1,2]".utf8), headers: [])] {
            #expect(throws: EventError.self) { _ = try CloudEvent(kafka: record) }
        }
        #expect {
            _ = try CloudEvent.fromHTTP(headers: [("content-type", "application/json")], body: Data("{}".utf8))
        } throws: { ($0 as? EventError)?.code == .undecodable }
    }

    @Test func causedEventsCarryLineage() {
        let e = sample()
        let next = e.caused(type: "almanac.predictor.trained", source: "almanac/train", json: ["ok": true])
        #expect(next.causationID == "ev-1")
        #expect(next.correlationID == "ev-0")
        #expect(next.tenant == "acme")
        #expect(next.traceparent == e.traceparent)
        #expect(next.subject == "sales")
        #expect(next.id != e.id)
    }

    /// The digit-by-digit formatter against the C library's formatting of the same fields.
    @Test func formatMatchesTheCLibraryForAnyDate() {
        var rng = SystemRandomNumberGenerator()
        let lowest = -62_135_596_800.0, highest = 253_402_300_799.0
        var dates = [lowest, highest, 0, 1_795_428_000.25, 1_795_428_000.9996, 951_782_400]
        // Random instants a quarter of a millisecond past a whole one: the calendar digits are
        // what is compared, and an instant on a half-millisecond tie rounds either way depending
        // on whether the compiler fuses `x * 1000 + 0.5` (it once made this test fail 1 ms apart).
        for _ in 0..<2000 {
            dates.append(Double(Int64.random(in: Int64(lowest * 1000)...Int64(highest * 1000), using: &rng)) / 1000 + 0.00025)
        }
        for raw in dates {
            var seconds = raw, millis = Int((raw - raw.rounded(.down)) * 1000 + 0.5)
            if millis >= 1000 { millis -= 1000; seconds += 1 }
            var t = time_t(seconds.rounded(.down)), parts = tm()
            gmtime_r(&t, &parts)
            let expected = String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                                  Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), millis)
            #expect(RFC3339.format(Date(timeIntervalSince1970: raw)) == expected, "\(raw)")
        }
        #expect(RFC3339.format(Date(timeIntervalSince1970: .nan)) == "0001-01-01T00:00:00.000Z")
    }

    @Test func rfc3339() {
        #expect(RFC3339.parse("2026-11-23T10:00:00Z")?.timeIntervalSince1970 == 1_795_428_000)
        #expect(RFC3339.parse("2026-11-23T11:00:00+01:00")?.timeIntervalSince1970 == 1_795_428_000)
        #expect(RFC3339.parse("2024-02-29T00:00:00Z") != nil)
        #expect(RFC3339.parse("2023-02-29T00:00:00Z") == nil)
        #expect(RFC3339.parse("2026-13-01T00:00:00Z") == nil)
        #expect(RFC3339.parse("2026-11-23 10:00:00") == nil)
        let d = Date(timeIntervalSince1970: 1_795_428_000.125)
        #expect(RFC3339.format(d) == "2026-11-23T10:00:00.125Z")
        #expect(RFC3339.parse(RFC3339.format(d)) == d)
    }

    @Test func formattingAnyDateIsSafe() {
        #expect(RFC3339.format(Date(timeIntervalSince1970: 1e300)) == "9999-12-31T23:59:59.000Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: -1e300)) == "0001-01-01T00:00:00.000Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: .nan)) == "0001-01-01T00:00:00.000Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: .infinity)) == "9999-12-31T23:59:59.000Z")
    }

    @Test func limitsHoldEveryEventToWhatTheArchiveCanStore() throws {
        func invalid(_ e: CloudEvent) -> EventError? {
            do { try e.validate(); return nil } catch let error as EventError { return error } catch { return nil }
        }
        var e = CloudEvent(id: "x", source: "s", type: "t", json: ["a": "b"])
        #expect(invalid(e) == nil)
        e.subject = "a\u{0}b"
        #expect(invalid(e)?.attribute == "subject")
        #expect(invalid(e)?.message.contains("\\u0000") == true, "the NUL is shown escaped")
        e.subject = String(repeating: "x", count: EventLimits.maxAttributeBytes + 1)
        #expect(invalid(e)?.attribute == "subject")
        e.subject = nil
        e.time = Date(timeIntervalSince1970: -62_135_596_801)
        #expect(invalid(e)?.attribute == "time")
        e.time = EventLimits.earliestTime
        #expect(invalid(e) == nil)
        e.time = EventLimits.latestTime.addingTimeInterval(1)
        #expect(invalid(e)?.attribute == "time")
        e.time = nil
        e.data = Data(#"{"a":"\u0000"}"#.utf8)
        #expect(invalid(e)?.attribute == "data")
        e.data = Data(#"{"a":"\\u0000"}"#.utf8)
        #expect(invalid(e) == nil, "an escaped backslash before u0000 is text, not a NUL")
        e.data = Data((String(repeating: "[", count: 65) + String(repeating: "]", count: 65)).utf8)
        #expect(invalid(e)?.message.contains("deeper than 64") == true)
        e.data = Data(#"{"s":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}"#.utf8)
        #expect(invalid(e) == nil, "brackets inside strings are not nesting")
        e.datacontenttype = "text/csv"
        e.data = Data("a,\u{0}".utf8)
        #expect(invalid(e) == nil, "data that is not JSON is archived as base64")
        #expect(EventLimits.quoted("a\u{1}\"b", limit: 10) == #""a\u0001\"b""#)
        #expect(EventLimits.quoted(String(repeating: "z", count: 100), limit: 3) == "\"zzz…\"")
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: "[1e999]") }
    }
}

@Suite struct JSONTests {
    @Test func parsesAndSerialisesDeterministically() throws {
        let v = try JSONValue(parsing: #"{"b":[1,2.5,-3e2,true,null],"a":"x\"\u00e9\n","c":{}}"#)
        #expect(v["a"]?.stringValue == "x\"é\n")
        #expect(v["b"]?.arrayValue?[2].numberValue == -300)
        #expect(v.serialized() == #"{"a":"x\"é\n","b":[1,2.5,-300,true,null],"c":{}}"#)
        #expect(try JSONValue(parsing: v.serialized()) == v)
    }

    @Test("malformed JSON is refused with the offset", arguments: ["", "{", "[1,]", "{\"a\" 1}", "nul", "01x", "\"\\q\"", "[1] 2"])
    func malformed(_ text: String) {
        #expect(throws: JSONParseError.self) { _ = try JSONValue(parsing: text) }
    }
}
