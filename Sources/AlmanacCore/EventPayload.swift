import Foundation

/// The data of one event type as a Swift type. Its coded fields are the JSON Schema's in
/// `events/<type>.schema.json`, which stays the wire contract (a test keeps each type and its
/// schema's examples in agreement).
///
/// ```swift
/// let imported = try event.decode(DatasetImported.self)
/// context.emit(ForecastCreated(dataset: imported.dataset, …))
/// ```
public protocol EventPayload: Codable, Sendable {
    /// The CloudEvents `type` this payload travels as.
    static var eventType: String { get }
}

extension EventPayload {
    /// The payload as JSON, as it goes on the wire (fields in their schema's names; absent
    /// optionals left out).
    public func json() -> JSONValue {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.nonConformingFloatEncodingStrategy = .throw
        do {
            return try JSONValue(parsing: try encoder.encode(self))
        } catch {
            // A payload type's fields are strings, numbers, arrays and objects of them; only a
            // non-finite number can fail, and the types keep metrics finite (`FiniteMetrics`).
            preconditionFailure("\(Self.eventType) payload cannot be JSON: \(error)")
        }
    }
}

extension CloudEvent {
    /// Makes an event carrying a payload as its JSON data, of the payload's type.
    public init<Payload: EventPayload>(id: String = UUID().uuidString.lowercased(), source: String, subject: String? = nil,
                                       payload: Payload) {
        self.init(id: id, source: source, type: Payload.eventType, subject: subject, json: payload.json())
    }

    /// The event's data as `Payload`.
    /// - Throws: `EventError` (`schema_violation`) that names the event, its type and the field
    ///   that is missing or of the wrong kind, when the event is of another type or its data
    ///   does not decode.
    public func decode<Payload: EventPayload>(_: Payload.Type) throws -> Payload {
        let what = "event \(EventLimits.quoted(id)) of type \(EventLimits.quoted(type))"
        guard type == Payload.eventType else {
            throw EventError(.schemaViolation, "\(what) is not \(Payload.eventType)", attribute: "type")
        }
        guard let data, hasJSONData else {
            throw EventError(.schemaViolation, "\(what) has no JSON data", attribute: "data")
        }
        do {
            return try JSONDecoder().decode(Payload.self, from: data)
        } catch let error as DecodingError {
            throw EventError(.schemaViolation, "\(what): \(Self.describe(error))", attribute: "data")
        }
    }

    /// "data.problems[0].line: required" and the like, from a decoding error.
    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
            var text = "data"
            for key in keys + (last.map { [$0] } ?? []) {
                if let i = key.intValue { text += "[\(i)]" } else { text += ".\(key.stringValue)" }
            }
            return text
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context.codingPath, key)): required"
        case .typeMismatch(let type, let context): return "\(path(context.codingPath)): must be \(kind(type))"
        case .valueNotFound(let type, let context): return "\(path(context.codingPath)): must be \(kind(type)), not null"
        case .dataCorrupted(let context): return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }

    private static func kind(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int64.Type: return "an integer"
        case is Double.Type: return "a number"
        case is Bool.Type: return "a boolean"
        default: return "\(type)"
        }
    }
}
