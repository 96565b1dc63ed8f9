import Foundation

/// A CloudEvents 1.0 event: what every arrow in an Almanac pipeline carries.
///
/// Required attributes are `id`, `source`, `specversion` and `type`; the optional ones are
/// `datacontenttype`, `dataschema`, `subject` and `time`. Almanac's extensions are `tenant`,
/// `traceparent` (W3C trace context), `causationid` (the id of the event that caused this
/// one) and `correlationid` (the id of the chain's first event); any other extension is
/// kept in `extensions` as a string.
public struct CloudEvent: Sendable, Equatable {
    /// The only spec version this type reads and writes.
    public static let specVersion = "1.0"

    /// Identifies the event; with `source`, unique per event.
    public var id: String
    /// The context in which the event happened, as a URI-reference (`almanac/ingest`).
    public var source: String
    /// The CloudEvents version, always "1.0".
    public var specversion: String
    /// What happened, reverse-DNS (`almanac.data.arrived`).
    public var type: String
    /// The media type of `data` (`application/json` when absent and the data is JSON).
    public var datacontenttype: String?
    /// A URI naming the schema `data` adheres to.
    public var dataschema: String?
    /// What the event is about inside its source: in Almanac, the dataset. It is the Kafka key.
    public var subject: String?
    /// When it happened.
    public var time: Date?
    /// Extension attributes, by lowercase name (`tenant`, `traceparent`, `causationid`, `correlationid`, …).
    public var extensions: [String: String]
    /// The payload bytes, as carried.
    public var data: Data?

    /// Makes an event; `id` defaults to a new UUID and `time` to now.
    public init(
        id: String = UUID().uuidString.lowercased(), source: String, type: String,
        subject: String? = nil, time: Date? = Date(), datacontenttype: String? = nil,
        dataschema: String? = nil, extensions: [String: String] = [:], data: Data? = nil
    ) {
        self.id = id
        self.source = source
        self.specversion = CloudEvent.specVersion
        self.type = type
        self.subject = subject
        self.time = time
        self.datacontenttype = datacontenttype
        self.dataschema = dataschema
        self.extensions = extensions
        self.data = data
    }

    /// Makes an event whose data is JSON.
    public init(
        id: String = UUID().uuidString.lowercased(), source: String, type: String,
        subject: String? = nil, time: Date? = Date(), json: JSONValue, extensions: [String: String] = [:]
    ) {
        self.init(id: id, source: source, type: type, subject: subject, time: time,
                  datacontenttype: "application/json", extensions: extensions, data: json.serializedData())
    }

    /// The tenant extension, or "default".
    public var tenant: String {
        get { extensions["tenant"] ?? "default" }
        set { extensions["tenant"] = newValue }
    }
    /// The W3C `traceparent` extension.
    public var traceparent: String? {
        get { extensions["traceparent"] }
        set { extensions["traceparent"] = newValue }
    }
    /// The id of the event that caused this one.
    public var causationID: String? {
        get { extensions["causationid"] }
        set { extensions["causationid"] = newValue }
    }
    /// The id of the first event of this chain.
    public var correlationID: String? {
        get { extensions["correlationid"] }
        set { extensions["correlationid"] = newValue }
    }
    /// The trace id inside `traceparent` (32 hex digits), if there is one.
    public var traceID: String? {
        guard let parts = traceparent?.split(separator: "-"), parts.count == 4 else { return nil }
        return String(parts[1])
    }

    /// Whether the data is JSON (`application/json`, `+json` types, or no content type).
    public var hasJSONData: Bool {
        guard let ct = datacontenttype?.lowercased() else { return true }
        let base = ct.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ct
        return base == "application/json" || base == "text/json" || base.hasSuffix("+json")
    }

    /// The data parsed as JSON, or nil when there is none or it is not JSON.
    public var jsonData: JSONValue? {
        guard let data, hasJSONData else { return nil }
        return try? JSONValue(parsing: data)
    }

    /// A new event caused by this one: it inherits tenant, trace, subject and correlation,
    /// and records this event's id as its causation id.
    public func caused(
        type: String, source: String, subject: String? = nil, json: JSONValue
    ) -> CloudEvent {
        var next = CloudEvent(source: source, type: type, subject: subject ?? self.subject, json: json)
        next.extensions["tenant"] = extensions["tenant"]
        next.traceparent = traceparent
        next.causationID = id
        next.correlationID = correlationID ?? id
        return next
    }

    /// Checks the rules of CloudEvents 1.0 that a decoded event must meet, and Almanac's
    /// `EventLimits`: required attributes non-empty, attribute names lowercase a–z0–9 (at
    /// most 20), no control characters in any attribute, no attribute or event over its
    /// size, `time` within the years 0001–9999, and data that Postgres can store as jsonb.
    /// - Throws: `EventError` with code `.invalidEvent`, listing every problem; its
    ///   `attribute` names the first attribute that is wrong.
    public func validate() throws {
        var problems: [(attribute: String, message: String)] = []
        if id.isEmpty { problems.append(("id", "'id' is required and must not be empty")) }
        if source.isEmpty { problems.append(("source", "'source' is required and must not be empty")) }
        if specversion != CloudEvent.specVersion {
            problems.append(("specversion", "'specversion' must be \"1.0\", got \(EventLimits.quoted(specversion))"))
        }
        if type.isEmpty { problems.append(("type", "'type' is required and must not be empty")) }
        if extensions.count > EventLimits.maxExtensions {
            problems.append(("extensions", "at most \(EventLimits.maxExtensions) extension attributes, got \(extensions.count)"))
        }
        for name in extensions.keys.sorted() where !CloudEvent.isValidAttributeName(name) {
            problems.append((name, "extension name \(EventLimits.quoted(name)) must be 1-20 lowercase letters or digits"))
        }
        var size = data?.count ?? 0
        for (name, value) in stringAttributes {
            size += name.utf8.count + value.utf8.count
            if value.utf8.count > EventLimits.maxAttributeBytes {
                problems.append((name, "'\(name)' is \(value.utf8.count) bytes; an attribute may be at most \(EventLimits.maxAttributeBytes)"))
            } else if EventLimits.hasControlCharacter(value) {
                problems.append((name, "'\(name)' holds a control character: \(EventLimits.quoted(value))"))
            }
        }
        if let time, !(EventLimits.earliestTime...EventLimits.latestTime).contains(time) {
            problems.append(("time", "'time' must fall in the years 0001-9999 (UTC), got \(time.timeIntervalSince1970) seconds from 1970"))
        }
        if let tp = traceparent, !CloudEvent.isValidTraceparent(tp) {
            problems.append(("traceparent", "'traceparent' must be 00-<32 hex>-<16 hex>-<2 hex>, got \(EventLimits.quoted(tp))"))
        }
        if size > EventLimits.maxEventBytes {
            problems.append(("data", "the event is \(size) bytes; at most \(EventLimits.maxEventBytes) are accepted (data and attributes together)"))
        } else if let data, hasJSONData, let problem = EventLimits.jsonStorageProblem(data) {
            problems.append(("data", problem))
        }
        if let first = problems.first {
            throw EventError(.invalidEvent, "not a valid CloudEvent: " + problems.map(\.message).joined(separator: "; "),
                             attribute: first.attribute)
        }
    }

    /// Every string-valued attribute by name: the context attributes and the extensions.
    var stringAttributes: [(String, String)] {
        var out: [(String, String)] = [("id", id), ("source", source), ("specversion", specversion), ("type", type)]
        if let subject { out.append(("subject", subject)) }
        if let datacontenttype { out.append(("datacontenttype", datacontenttype)) }
        if let dataschema { out.append(("dataschema", dataschema)) }
        for (k, v) in extensions { out.append((k, v)) }
        return out
    }

    /// Attribute names: lowercase a-z and 0-9, at most 20 characters (the spec's advice).
    public static func isValidAttributeName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 20 && name.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) }
    }

    static func isValidTraceparent(_ value: String) -> Bool {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        let lengths = [2, 32, 16, 2]
        for (p, n) in zip(parts, lengths) {
            guard p.count == n, p.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return false }
        }
        return true
    }

    /// A new random W3C `traceparent` (version 00, sampled).
    public static func newTraceparent() -> String {
        func hex(_ bytes: Int) -> String { Hex.lowercase((0..<bytes).map { _ in UInt8.random(in: 0...255) }) }
        return "00-\(hex(16))-\(hex(8))-01"
    }

    /// The context attribute names this type models directly (not extensions).
    public static let contextAttributes: Set<String> = [
        "id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time",
    ]
}

/// Why an event could not be read, validated or handled.
public struct EventError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// The bytes are not a CloudEvent in any content mode.
        public static let undecodable = Code(name: "undecodable")
        /// A CloudEvent whose attributes break the spec.
        public static let invalidEvent = Code(name: "invalid_event")
        /// The data does not satisfy its type's JSON Schema.
        public static let schemaViolation = Code(name: "schema_violation")
        /// The sender may not publish events of this type (internal `almanac.*` types).
        public static let forbiddenType = Code(name: "forbidden_type")
        /// A printable name.
        public var description: String { name }
    }

    /// The kind of failure.
    public var code: Code
    /// What was wrong and what to do.
    public var message: String
    /// The attribute that is wrong (`time`, `data`, an extension's name), when one is.
    public var attribute: String?
    /// The event's position in an HTTP batch, when it came in one.
    public var index: Int?

    /// Makes an error.
    public init(_ code: Code, _ message: String, attribute: String? = nil, index: Int? = nil) {
        self.code = code
        self.message = message
        self.attribute = attribute
        self.index = index
    }

    /// The message.
    public var description: String { message }
}
