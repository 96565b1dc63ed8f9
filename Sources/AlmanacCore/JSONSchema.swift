import Foundation

/// A JSON Schema (the draft 2020-12 keywords that event schemas use) that validates values.
///
/// Supported: `type` (one or a list), `enum`, `const`, `properties`, `required`,
/// `additionalProperties` (boolean or schema), `minProperties`, `items`, `minItems`, `maxItems`,
/// `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minLength`, `maxLength`,
/// `pattern`, `format` (`date-time`, `uri`), `allOf`, `anyOf`, `oneOf`, `not`, and local
/// `$ref`s into `$defs`. Unknown keywords are ignored, as the spec says.
public struct JSONSchema: Sendable {
    /// The schema document.
    public let document: JSONValue

    /// Wraps a schema document.
    /// - Throws: `SchemaError` when the document is not an object or boolean.
    public init(_ document: JSONValue) throws {
        switch document {
        case .object, .bool: self.document = document
        default: throw SchemaError(path: "", message: "a schema must be an object or a boolean, got \(document.typeName)")
        }
    }

    /// Every way `value` breaks the schema, each with its JSON pointer-style path (`/rows/0`).
    public func violations(of value: JSONValue) -> [SchemaError] {
        var out: [SchemaError] = []
        check(document, value, path: "", into: &out)
        return out
    }

    /// Throws the violations, joined, when there are any.
    public func validate(_ value: JSONValue) throws {
        let v = violations(of: value)
        if !v.isEmpty {
            throw SchemaError(path: v[0].path, message: v.map(\.description).joined(separator: "; "))
        }
    }

    func resolve(_ ref: String) -> JSONValue? {
        guard ref.hasPrefix("#/") else { return ref == "#" ? document : nil }
        var node = document
        for part in ref.dropFirst(2).split(separator: "/") {
            guard let next = node[String(part)] else { return nil }
            node = next
        }
        return node
    }

    func check(_ schema: JSONValue, _ value: JSONValue, path: String, into out: inout [SchemaError]) {
        func fail(_ message: String) { out.append(SchemaError(path: path.isEmpty ? "/" : path, message: message)) }
        switch schema {
        case .bool(let b): if !b { fail("no value is allowed here") }; return
        case .object: break
        default: return
        }
        if case .string(let ref)? = schema["$ref"] {
            if let target = resolve(ref) { check(target, value, path: path, into: &out) } else { fail("unresolvable $ref \(ref)") }
        }
        if let t = schema["type"] {
            let allowed = t.arrayValue?.compactMap(\.stringValue) ?? t.stringValue.map { [$0] } ?? []
            let actual = value.typeName
            let ok = allowed.contains(actual) || (actual == "integer" && allowed.contains("number"))
            if !ok { fail("must be \(allowed.joined(separator: " or ")), got \(actual)"); return }
        }
        if case .array(let options)? = schema["enum"], !options.contains(value) {
            fail("must be one of \(options.map { $0.serialized() }.joined(separator: ", ")), got \(value.serialized())")
        }
        if let c = schema["const"], c != value { fail("must be \(c.serialized()), got \(value.serialized())") }
        switch value {
        case .object(let members):
            if case .array(let required)? = schema["required"] {
                for case .string(let name) in required where members[name] == nil {
                    fail("missing required property '\(name)'")
                }
            }
            if let min = schema["minProperties"]?.intValue, members.count < min { fail("needs at least \(min) properties") }
            let properties = schema["properties"]?.objectValue ?? [:]
            for (name, member) in members {
                let memberPath = "\(path)/\(name)"
                if let sub = properties[name] {
                    check(sub, member, path: memberPath, into: &out)
                } else if let extra = schema["additionalProperties"] {
                    if case .bool(false) = extra {
                        out.append(SchemaError(path: memberPath, message: "property '\(name)' is not allowed"))
                    } else {
                        check(extra, member, path: memberPath, into: &out)
                    }
                }
            }
        case .array(let elements):
            if let min = schema["minItems"]?.intValue, elements.count < min { fail("needs at least \(min) items, got \(elements.count)") }
            if let max = schema["maxItems"]?.intValue, elements.count > max { fail("allows at most \(max) items, got \(elements.count)") }
            if let items = schema["items"] {
                for (i, e) in elements.enumerated() { check(items, e, path: "\(path)/\(i)", into: &out) }
            }
        case .number(let n):
            if let m = schema["minimum"]?.numberValue, n < m { fail("must be ≥ \(JSONValue.format(m)), got \(JSONValue.format(n))") }
            if let m = schema["maximum"]?.numberValue, n > m { fail("must be ≤ \(JSONValue.format(m)), got \(JSONValue.format(n))") }
            if let m = schema["exclusiveMinimum"]?.numberValue, n <= m { fail("must be > \(JSONValue.format(m)), got \(JSONValue.format(n))") }
            if let m = schema["exclusiveMaximum"]?.numberValue, n >= m { fail("must be < \(JSONValue.format(m)), got \(JSONValue.format(n))") }
        case .string(let s):
            let length = s.count
            if let m = schema["minLength"]?.intValue, length < m { fail("must be at least \(m) characters long") }
            if let m = schema["maxLength"]?.intValue, length > m { fail("must be at most \(m) characters long") }
            if case .string(let p)? = schema["pattern"] {
                if let re = try? NSRegularExpression(pattern: p),
                   re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) == nil {
                    fail("must match the pattern \(p), got \"\(s)\"")
                }
            }
            if case .string(let format)? = schema["format"] {
                switch format {
                case "date-time": if RFC3339.parse(s) == nil { fail("must be an RFC 3339 date-time, got \"\(s)\"") }
                case "uri":
                    if URL(string: s)?.scheme == nil { fail("must be an absolute URI, got \"\(s)\"") }
                default: break
                }
            }
        default: break
        }
        if case .array(let subs)? = schema["allOf"] {
            for s in subs { check(s, value, path: path, into: &out) }
        }
        if case .array(let subs)? = schema["anyOf"] {
            if !subs.contains(where: { sub in var o: [SchemaError] = []; check(sub, value, path: path, into: &o); return o.isEmpty }) {
                fail("must match at least one of the anyOf schemas")
            }
        }
        if case .array(let subs)? = schema["oneOf"] {
            let n = subs.filter { sub in var o: [SchemaError] = []; check(sub, value, path: path, into: &o); return o.isEmpty }.count
            if n != 1 { fail("must match exactly one of the oneOf schemas, matched \(n)") }
        }
        if let not = schema["not"] {
            var o: [SchemaError] = []
            check(not, value, path: path, into: &o)
            if o.isEmpty { fail("must not match the 'not' schema") }
        }
    }
}

/// Where and how a value breaks a schema (or a schema is malformed).
public struct SchemaError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The path in the value, JSON-pointer style (`/rows/0/value`).
    public var path: String
    /// What is wrong there.
    public var message: String
    /// `path: message`.
    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// The JSON Schemas of event types, loaded from a folder of `<type>.schema.json` files.
///
/// `events/almanac.data.arrived.schema.json` is the schema of `almanac.data.arrived`'s data;
/// the folder `events/examples/` holds `<type>.valid.json` and `<type>.invalid.json`.
public struct EventSchemaRegistry: Sendable {
    /// Schemas by event type.
    public private(set) var schemas: [String: JSONSchema]

    /// An empty registry: every event passes.
    public init() { schemas = [:] }

    /// Loads every `*.schema.json` in a folder.
    /// - Throws: `ConfigurationError` naming the file that is not a valid schema.
    public init(directory: URL) throws {
        schemas = [:]
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names.sorted() where name.hasSuffix(".schema.json") {
            let file = directory.appendingPathComponent(name)
            let type = String(name.dropLast(".schema.json".count))
            do {
                schemas[type] = try JSONSchema(JSONValue(parsing: Data(contentsOf: file)))
            } catch {
                throw ConfigurationError(file: file.path, field: nil, message: "not a valid JSON Schema: \(error)")
            }
        }
    }

    /// Adds or replaces a schema.
    public mutating func register(type: String, schema: JSONSchema) { schemas[type] = schema }

    /// Validates an event's data against its type's schema, when there is one.
    /// - Throws: `EventError.schemaViolation` naming the type and each violation.
    public func validate(_ event: CloudEvent) throws {
        guard let schema = schemas[event.type] else { return }
        guard let data = event.data, !data.isEmpty else {
            throw EventError(.schemaViolation, "event \(event.id) of type \(event.type) has no data, but its schema requires a JSON object")
        }
        guard event.hasJSONData, let json = try? JSONValue(parsing: data) else {
            throw EventError(.schemaViolation, "event \(event.id) of type \(event.type): data is not JSON, but its schema requires it")
        }
        let violations = schema.violations(of: json)
        if !violations.isEmpty {
            throw EventError(.schemaViolation,
                             "event \(event.id) of type \(event.type) fails events/\(event.type).schema.json: "
                                 + violations.map(\.description).joined(separator: "; "))
        }
    }
}
