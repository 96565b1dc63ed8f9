import Foundation

/// The media type of one CloudEvent in structured JSON mode.
public let cloudEventsJSONType = "application/cloudevents+json"
/// The media type of a batch of CloudEvents (a JSON array of structured events).
public let cloudEventsBatchJSONType = "application/cloudevents-batch+json"

extension CloudEvent {
    // MARK: Structured JSON

    /// The event as one JSON object (structured content mode): attributes as members and
    /// `data` as JSON when it is JSON, else `data_base64`.
    public func structuredJSON() -> JSONValue {
        var o: [String: JSONValue] = [
            "specversion": .string(specversion), "id": .string(id), "source": .string(source), "type": .string(type),
        ]
        if let subject { o["subject"] = .string(subject) }
        if let time { o["time"] = .string(RFC3339.format(time)) }
        if let datacontenttype { o["datacontenttype"] = .string(datacontenttype) }
        if let dataschema { o["dataschema"] = .string(dataschema) }
        for (k, v) in extensions { o[k] = .string(v) }
        if let data {
            if hasJSONData, let json = try? JSONValue(parsing: data) {
                o["data"] = json
            } else {
                o["data_base64"] = .string(data.base64EncodedString())
            }
        }
        return .object(o)
    }

    /// Reads an event from its structured JSON form.
    /// - Throws: `EventError.undecodable` when the text is not a JSON object,
    ///   `.invalidEvent` when attributes are missing or of the wrong type.
    public init(structured data: Data) throws {
        let json: JSONValue
        do { json = try JSONValue(parsing: data) } catch {
            throw EventError(.undecodable, "structured CloudEvent is not JSON: \(error)")
        }
        try self.init(structuredJSON: json)
    }

    /// Reads an event from an already-parsed structured JSON object.
    public init(structuredJSON json: JSONValue) throws {
        guard case .object(let o) = json else {
            throw EventError(.undecodable, "structured CloudEvent must be a JSON object, got \(json.typeName)")
        }
        var attributes: [String: String] = [:]
        var problems: [(String, String)] = []
        for (k, v) in o where k != "data" && k != "data_base64" {
            switch v {
            case .string(let s): attributes[k] = s
            case .number, .bool: attributes[k] = v.serialized()
            case .null: continue
            default: problems.append((k, "attribute \(EventLimits.quoted(k)) must be a string, got \(v.typeName)"))
            }
        }
        if let first = problems.first {
            throw EventError(.invalidEvent, "not a valid CloudEvent: " + problems.map(\.1).joined(separator: "; "), attribute: first.0)
        }
        var payload: Data?
        if let d = o["data"], d != .null {
            if case .string(let s) = d, let ct = attributes["datacontenttype"], !CloudEvent.isJSONContentType(ct) {
                payload = Data(s.utf8)
            } else {
                payload = d.serializedData()
            }
        } else if let b = o["data_base64"] {
            guard case .string(let s) = b, let bytes = Data(base64Encoded: s) else {
                throw EventError(.invalidEvent, "not a valid CloudEvent: 'data_base64' must be base64 text", attribute: "data_base64")
            }
            payload = bytes
        }
        try self.init(attributes: attributes, data: payload)
    }

    static func isJSONContentType(_ ct: String) -> Bool {
        let base = ct.lowercased().split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        return base == "application/json" || base == "text/json" || base.hasSuffix("+json")
    }

    /// Builds an event from attribute strings (as both binary and structured modes carry them).
    /// - Throws: `EventError.invalidEvent` naming every missing or malformed attribute.
    public init(attributes: [String: String], data: Data?) throws {
        var missing: [String] = []
        for name in ["id", "source", "specversion", "type"] where (attributes[name] ?? "").isEmpty {
            missing.append(name)
        }
        if let first = missing.first {
            throw EventError(.invalidEvent,
                             "not a valid CloudEvent: missing required attribute\(missing.count > 1 ? "s" : "") "
                                 + missing.map { "'\($0)'" }.joined(separator: ", ")
                                 + "; every event needs id, source, specversion (\"1.0\") and type", attribute: first)
        }
        var time: Date?
        if let t = attributes["time"] {
            guard let parsed = RFC3339.parse(t) else {
                throw EventError(.invalidEvent, "not a valid CloudEvent: 'time' must be an RFC 3339 timestamp, got \(EventLimits.quoted(t))",
                                 attribute: "time")
            }
            guard (EventLimits.earliestTime...EventLimits.latestTime).contains(parsed) else {
                throw EventError(.invalidEvent, "not a valid CloudEvent: 'time' must fall in the years 0001-9999 (UTC), got \(EventLimits.quoted(t))",
                                 attribute: "time")
            }
            time = parsed
        }
        var ext: [String: String] = [:]
        for (k, v) in attributes where !CloudEvent.contextAttributes.contains(k) { ext[k] = v }
        self.init(id: attributes["id"]!, source: attributes["source"]!, type: attributes["type"]!,
                  subject: attributes["subject"], time: time, datacontenttype: attributes["datacontenttype"],
                  dataschema: attributes["dataschema"], extensions: ext, data: data)
        self.specversion = attributes["specversion"]!
        try validate()
    }

    // MARK: Kafka

    /// The Kafka record of this event in binary content mode: `ce_*` headers,
    /// `content-type`, value = data, key = subject.
    public func kafkaBinary() -> KafkaEventRecord {
        var headers: [(String, Data)] = [
            ("ce_specversion", Data(specversion.utf8)), ("ce_id", Data(id.utf8)),
            ("ce_source", Data(source.utf8)), ("ce_type", Data(type.utf8)),
        ]
        if let subject { headers.append(("ce_subject", Data(subject.utf8))) }
        if let time { headers.append(("ce_time", Data(RFC3339.format(time).utf8))) }
        if let dataschema { headers.append(("ce_dataschema", Data(dataschema.utf8))) }
        if let datacontenttype { headers.append(("content-type", Data(datacontenttype.utf8))) }
        for (k, v) in extensions.sorted(by: { $0.key < $1.key }) { headers.append(("ce_\(k)", Data(v.utf8))) }
        return KafkaEventRecord(key: subject.map { Data($0.utf8) }, value: data, headers: headers)
    }

    /// Reads an event from a Kafka record in either content mode: structured when the
    /// `content-type` header is `application/cloudevents+json` (or there are no `ce_`
    /// headers and the value is a JSON object with `specversion`), binary otherwise.
    /// - Throws: `EventError` saying which mode was tried and what was wrong.
    public init(kafka record: KafkaEventRecord) throws {
        var attributes: [String: String] = [:]
        var contentType: String?
        for (name, value) in record.headers {
            let lower = name.lowercased()
            guard let text = String(data: value, encoding: .utf8) else {
                throw EventError(.undecodable, "Kafka header \(EventLimits.quoted(name)) is not UTF-8 text",
                                 attribute: name.lowercased().hasPrefix("ce_") ? String(name.lowercased().dropFirst(3)) : name)
            }
            if lower == "content-type" {
                contentType = text
            } else if lower.hasPrefix("ce_") {
                attributes[String(lower.dropFirst(3))] = text
            }
        }
        let isStructured = contentType.map { $0.lowercased().hasPrefix(cloudEventsJSONType) } ?? false
        if isStructured || (attributes.isEmpty && contentType == nil) {
            guard let value = record.value, !value.isEmpty else {
                throw EventError(.undecodable,
                                 "Kafka record has no ce_ headers and an empty value: it is not a CloudEvent in binary or structured mode")
            }
            do {
                try self.init(structured: value)
            } catch let e as EventError where e.code == .undecodable && !isStructured {
                throw EventError(.undecodable,
                                 "Kafka record is not a CloudEvent: no ce_ headers (binary mode) and the value is not a structured JSON event (\(e.message))")
            }
            return
        }
        if let contentType { attributes["datacontenttype"] = contentType }
        try self.init(attributes: attributes, data: record.value)
    }

    // MARK: HTTP

    /// Headers and body of this event in HTTP binary mode (`ce-*` headers).
    public func httpBinary() -> (headers: [(String, String)], body: Data) {
        var headers: [(String, String)] = [
            ("ce-specversion", specversion), ("ce-id", id), ("ce-source", source), ("ce-type", type),
        ]
        if let subject { headers.append(("ce-subject", subject)) }
        if let time { headers.append(("ce-time", RFC3339.format(time))) }
        if let dataschema { headers.append(("ce-dataschema", dataschema)) }
        if let datacontenttype { headers.append(("content-type", datacontenttype)) }
        for (k, v) in extensions.sorted(by: { $0.key < $1.key }) { headers.append(("ce-\(k)", v)) }
        return (headers, data ?? Data())
    }

    /// Reads the events of one HTTP request: structured (`application/cloudevents+json`),
    /// batch (`application/cloudevents-batch+json`, a JSON array) or binary (`ce-*` headers).
    /// - Parameter headers: request headers; names are matched case-insensitively.
    /// - Throws: `EventError` naming the mode and the problem; for a batch, the index of the bad event.
    public static func fromHTTP(headers: [(String, String)], body: Data) throws -> [CloudEvent] {
        var attributes: [String: String] = [:]
        var contentType: String?
        for (name, value) in headers {
            let lower = name.lowercased()
            if lower == "content-type" { contentType = value }
            else if lower.hasPrefix("ce-") {
                // Header values are percent-encoded per the HTTP binding.
                attributes[String(lower.dropFirst(3))] = value.removingPercentEncoding ?? value
            }
        }
        let ct = contentType?.lowercased() ?? ""
        if ct.hasPrefix(cloudEventsBatchJSONType) {
            let json: JSONValue
            do { json = try JSONValue(parsing: body) } catch {
                throw EventError(.undecodable, "batch body is not JSON: \(error)")
            }
            guard case .array(let items) = json else {
                throw EventError(.undecodable, "batch body must be a JSON array of CloudEvents, got \(json.typeName)")
            }
            guard items.count <= EventLimits.maxBatchEvents else {
                throw EventError(.invalidEvent, "a batch may hold at most \(EventLimits.maxBatchEvents) events, got \(items.count); split it")
            }
            return try items.enumerated().map { index, item in
                do { return try CloudEvent(structuredJSON: item) } catch let e as EventError {
                    throw EventError(e.code, "batch event [\(index)]: \(e.message)", attribute: e.attribute, index: index)
                }
            }
        }
        if ct.hasPrefix(cloudEventsJSONType) {
            return [try CloudEvent(structured: body)]
        }
        if attributes.isEmpty {
            throw EventError(.undecodable,
                             "request is not a CloudEvent: send Content-Type \(cloudEventsJSONType) (structured), \(cloudEventsBatchJSONType) (batch), or ce-id/ce-source/ce-specversion/ce-type headers (binary)")
        }
        if let contentType { attributes["datacontenttype"] = contentType }
        return [try CloudEvent(attributes: attributes, data: body.isEmpty ? nil : body)]
    }
}

/// A Kafka record as the event bindings see it: key, value and ordered headers.
public struct KafkaEventRecord: Sendable {
    /// The record key (the event's subject when Almanac produces it).
    public var key: Data?
    /// The record value (the event data in binary mode).
    public var value: Data?
    /// The headers in order; names may repeat.
    public var headers: [(String, Data)]

    /// Makes a record.
    public init(key: Data?, value: Data?, headers: [(String, Data)]) {
        self.key = key
        self.value = value
        self.headers = headers
    }
}
