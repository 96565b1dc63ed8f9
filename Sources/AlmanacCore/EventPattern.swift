import Foundation

/// An EventBridge-style event pattern, compiled.
///
/// A pattern is a JSON object whose keys name event attributes (`type`, `source`, `subject`,
/// `tenant`, any extension) or `data` (whose keys name data fields, nested as deep as the
/// data is). Leaves are arrays of matchers, any of which may match; all keys must match.
/// `"$or": [pattern, …]` at any level matches when one of its patterns does.
///
/// Matchers: a literal (string, number, boolean or null: exact match), `{"prefix": s}`,
/// `{"suffix": s}`, `{"equals-ignore-case": s}`, `{"wildcard": "a*b"}`,
/// `{"anything-but": literal | [literals] | {"prefix": s} | {"suffix": s}}`,
/// `{"numeric": [">", 0, "<=", 5]}` and `{"exists": true | false}`.
/// When the event's value is an array, a leaf matches when any element does.
public struct EventPattern: Sendable, Equatable {
    indirect enum Node: Sendable, Equatable {
        case all([(key: String, node: Node)])
        case any([Node])
        case leaf([Matcher])

        static func == (a: Node, b: Node) -> Bool {
            switch (a, b) {
            case (.all(let x), .all(let y)):
                return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.node == $1.node }
            case (.any(let x), .any(let y)): return x == y
            case (.leaf(let x), .leaf(let y)): return x == y
            default: return false
            }
        }
    }

    enum Matcher: Sendable, Equatable {
        case equals(JSONValue)
        case prefix(String, ignoreCase: Bool)
        case suffix(String, ignoreCase: Bool)
        case equalsIgnoreCase(String)
        case wildcard(String)
        case anythingBut([JSONValue])
        case anythingButPrefix(String)
        case anythingButSuffix(String)
        case numeric([(op: String, value: Double)])
        case exists(Bool)

        static func == (a: Matcher, b: Matcher) -> Bool {
            switch (a, b) {
            case (.equals(let x), .equals(let y)): return x == y
            case (.prefix(let x, let i), .prefix(let y, let j)): return x == y && i == j
            case (.suffix(let x, let i), .suffix(let y, let j)): return x == y && i == j
            case (.equalsIgnoreCase(let x), .equalsIgnoreCase(let y)): return x == y
            case (.wildcard(let x), .wildcard(let y)): return x == y
            case (.anythingBut(let x), .anythingBut(let y)): return x == y
            case (.anythingButPrefix(let x), .anythingButPrefix(let y)): return x == y
            case (.anythingButSuffix(let x), .anythingButSuffix(let y)): return x == y
            case (.numeric(let x), .numeric(let y)):
                return x.count == y.count && zip(x, y).allSatisfy { $0.op == $1.op && $0.value == $1.value }
            case (.exists(let x), .exists(let y)): return x == y
            default: return false
            }
        }
    }

    let root: Node
    /// The pattern as it was written.
    public let source: JSONValue

    /// Compiles a pattern.
    /// - Throws: `PatternError` whose `path` names the offending key (`data.rows[0]`).
    public init(_ pattern: JSONValue) throws {
        self.source = pattern
        self.root = try EventPattern.compile(pattern, path: "")
    }

    /// Compiles a pattern from JSON text.
    public init(json: String) throws {
        let value: JSONValue
        do { value = try JSONValue(parsing: json) } catch {
            throw PatternError(path: "", message: "pattern is not JSON: \(error)")
        }
        try self.init(value)
    }

    /// Whether an event matches.
    public func matches(_ event: CloudEvent) -> Bool {
        matches(EventPattern.document(for: event))
    }

    /// Whether a JSON document (an event as `document(for:)` renders it) matches.
    public func matches(_ document: JSONValue) -> Bool {
        EventPattern.evaluate(root, document)
    }

    /// The JSON document a pattern sees for an event: its attributes, extensions and `data`.
    public static func document(for event: CloudEvent) -> JSONValue {
        var o: [String: JSONValue] = [
            "id": .string(event.id), "source": .string(event.source), "type": .string(event.type),
            "specversion": .string(event.specversion),
        ]
        if let s = event.subject { o["subject"] = .string(s) }
        if let t = event.time { o["time"] = .string(RFC3339.format(t)) }
        if let c = event.datacontenttype { o["datacontenttype"] = .string(c) }
        for (k, v) in event.extensions { o[k] = .string(v) }
        if let d = event.jsonData { o["data"] = d }
        return .object(o)
    }

    // MARK: Compiling

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    static func compile(_ value: JSONValue, path: String) throws -> Node {
        guard case .object(let members) = value else {
            throw PatternError(path: path, message: "a pattern must be an object of keys, got \(value.typeName)")
        }
        var parts: [(key: String, node: Node)] = []
        for key in members.keys.sorted() {
            let child = members[key]!
            let childPath = join(path, key)
            if key == "$or" {
                guard case .array(let alternatives) = child, !alternatives.isEmpty else {
                    throw PatternError(path: childPath, message: "$or needs a non-empty array of patterns")
                }
                let nodes = try alternatives.enumerated().map { try compile($1, path: "\(childPath)[\($0)]") }
                parts.append((key, .any(nodes)))
                continue
            }
            switch child {
            case .object: parts.append((key, try compile(child, path: childPath)))
            case .array(let matchers):
                guard !matchers.isEmpty else {
                    throw PatternError(path: childPath, message: "a list of matchers must not be empty")
                }
                let compiled = try matchers.enumerated().map { try compileMatcher($1, path: "\(childPath)[\($0)]") }
                parts.append((key, .leaf(compiled)))
            default:
                throw PatternError(path: childPath,
                                   message: "values must be in a list (write [\(child.serialized())]) or be a nested object")
            }
        }
        return .all(parts)
    }

    static func compileMatcher(_ value: JSONValue, path: String) throws -> Matcher {
        switch value {
        case .string, .number, .bool, .null: return .equals(value)
        case .array: throw PatternError(path: path, message: "a matcher cannot be an array")
        case .object(let o):
            guard o.count == 1, let (name, arg) = o.first else {
                throw PatternError(path: path, message: "a matcher object has exactly one key, got \(o.keys.sorted())")
            }
            let p = join(path, name)
            switch name {
            case "prefix", "suffix":
                let (text, ignoreCase) = try stringArgument(arg, path: p, allowIgnoreCase: true)
                return name == "prefix" ? .prefix(text, ignoreCase: ignoreCase) : .suffix(text, ignoreCase: ignoreCase)
            case "equals-ignore-case":
                guard case .string(let s) = arg else { throw PatternError(path: p, message: "needs a string") }
                return .equalsIgnoreCase(s.lowercased())
            case "wildcard":
                guard case .string(let s) = arg else { throw PatternError(path: p, message: "needs a string") }
                return .wildcard(s)
            case "exists":
                guard case .bool(let b) = arg else { throw PatternError(path: p, message: "needs true or false") }
                return .exists(b)
            case "anything-but":
                switch arg {
                case .string, .number, .bool, .null: return .anythingBut([arg])
                case .array(let values):
                    guard !values.isEmpty, values.allSatisfy({ $0.arrayValue == nil && $0.objectValue == nil }) else {
                        throw PatternError(path: p, message: "needs a non-empty list of literals")
                    }
                    return .anythingBut(values)
                case .object(let inner):
                    if case .string(let s)? = inner["prefix"], inner.count == 1 { return .anythingButPrefix(s) }
                    if case .string(let s)? = inner["suffix"], inner.count == 1 { return .anythingButSuffix(s) }
                    throw PatternError(path: p, message: "takes a literal, a list of literals, {\"prefix\": s} or {\"suffix\": s}")
                }
            case "numeric":
                guard case .array(let terms) = arg, !terms.isEmpty, terms.count % 2 == 0, terms.count <= 4 else {
                    throw PatternError(path: p, message: "needs [op, number] or [op, number, op, number], e.g. [\">\", 0, \"<=\", 5]")
                }
                var comparisons: [(op: String, value: Double)] = []
                for i in stride(from: 0, to: terms.count, by: 2) {
                    guard case .string(let op) = terms[i], ["=", "<", "<=", ">", ">="].contains(op) else {
                        throw PatternError(path: "\(p)[\(i)]", message: "operator must be one of = < <= > >=, got \(terms[i].serialized())")
                    }
                    guard case .number(let n) = terms[i + 1] else {
                        throw PatternError(path: "\(p)[\(i + 1)]", message: "must be a number, got \(terms[i + 1].serialized())")
                    }
                    comparisons.append((op, n))
                }
                return .numeric(comparisons)
            default:
                throw PatternError(path: p,
                                   message: "unknown matcher '\(name)'; use prefix, suffix, equals-ignore-case, wildcard, anything-but, numeric or exists")
            }
        }
    }

    static func stringArgument(_ arg: JSONValue, path: String, allowIgnoreCase: Bool) throws -> (String, Bool) {
        if case .string(let s) = arg { return (s, false) }
        if allowIgnoreCase, case .object(let o) = arg, o.count == 1, case .string(let s)? = o["equals-ignore-case"] {
            return (s.lowercased(), true)
        }
        throw PatternError(path: path, message: "needs a string (or {\"equals-ignore-case\": s})")
    }

    // MARK: Matching

    static func evaluate(_ node: Node, _ value: JSONValue?) -> Bool {
        switch node {
        case .any(let alternatives):
            return alternatives.contains { evaluate($0, value) }
        case .all(let parts):
            for (key, child) in parts {
                if key == "$or" {
                    if !evaluate(child, value) { return false }
                    continue
                }
                let member = value?[key]
                switch child {
                case .leaf: if !evaluate(child, member) { return false }
                default:
                    // A nested object pattern: an array of objects matches when any element does.
                    if case .array(let elements)? = member {
                        if !elements.contains(where: { evaluate(child, $0) }) { return false }
                    } else if !evaluate(child, member) { return false }
                }
            }
            return true
        case .leaf(let matchers):
            guard let value else {
                return matchers.contains { if case .exists(false) = $0 { return true }; return false }
            }
            if case .array(let elements) = value {
                return matchers.contains { m in
                    if case .exists(let want) = m { return want }
                    return elements.contains { matchOne(m, $0) }
                }
            }
            return matchers.contains { matchOne($0, value) }
        }
    }

    static func matchOne(_ m: Matcher, _ v: JSONValue) -> Bool {
        switch m {
        case .equals(let expected): return expected == v
        case .exists(let want): return want
        case .prefix(let p, let ic):
            guard case .string(let s) = v else { return false }
            return (ic ? s.lowercased() : s).hasPrefix(p)
        case .suffix(let p, let ic):
            guard case .string(let s) = v else { return false }
            return (ic ? s.lowercased() : s).hasSuffix(p)
        case .equalsIgnoreCase(let p):
            guard case .string(let s) = v else { return false }
            return s.lowercased() == p
        case .wildcard(let p):
            guard case .string(let s) = v else { return false }
            return wildcardMatch(Array(p.utf8), Array(s.utf8))
        case .anythingBut(let excluded): return !excluded.contains(v)
        case .anythingButPrefix(let p):
            guard case .string(let s) = v else { return true }
            return !s.hasPrefix(p)
        case .anythingButSuffix(let p):
            guard case .string(let s) = v else { return true }
            return !s.hasSuffix(p)
        case .numeric(let comparisons):
            guard case .number(let n) = v else { return false }
            return comparisons.allSatisfy { c in
                switch c.op {
                case "=": return n == c.value
                case "<": return n < c.value
                case "<=": return n <= c.value
                case ">": return n > c.value
                default: return n >= c.value
                }
            }
        }
    }

    /// `*` matches any run of characters; everything else is literal.
    static func wildcardMatch(_ p: [UInt8], _ s: [UInt8]) -> Bool {
        var pi = 0, si = 0, star = -1, mark = 0
        while si < s.count {
            if pi < p.count, p[pi] == UInt8(ascii: "*") { star = pi; mark = si; pi += 1 }
            else if pi < p.count, p[pi] == s[si] { pi += 1; si += 1 }
            else if star >= 0 { pi = star + 1; mark += 1; si = mark }
            else { return false }
        }
        while pi < p.count, p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}

/// A pattern that cannot be compiled.
public struct PatternError: Error, CustomStringConvertible, Sendable {
    /// Where in the pattern: a dotted path with indexes (`data.rows[0].numeric`).
    public var path: String
    /// What is wrong there.
    public var message: String
    /// `path: message`.
    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}
