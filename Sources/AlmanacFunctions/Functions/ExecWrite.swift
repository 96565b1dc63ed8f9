import AlmanacCore
import AlmanacPostgres
import Foundation

/// A database write that a program under the exec adapter hands back in its answer
/// (`"write": [...]`), staged like a Swift handler's `context.write`: it runs in the SDK's
/// commit transaction with the event's processed mark, so it happens exactly once.
///
/// ```json
/// {"insert": "predictors", "rows": [{"id": "pd-1", "tenant": "acme", "metrics": {"WAPE": 0.1}}], "on_conflict": "nothing"}
/// {"delete": "deep_training", "where": {"tenant": "acme", "dataset": "sales"}}
/// ```
///
/// Table and column names must be lowercase SQL identifiers (they are quoted too); every value
/// is a bound parameter: a string, number, boolean or null as itself, an array as a Postgres
/// array (nested for more dimensions), `{"$base64": "…"}` as bytea, any other object as JSON
/// text (for jsonb; a JSON array for jsonb is sent as a string). A row or condition naming a
/// `tenant` must name the event's tenant. A delete needs at least one condition.
public struct ExecWrite: Sendable, Equatable {
    /// What it does.
    public enum Operation: Sendable, Equatable {
        /// Inserts rows; `skipConflicts` adds `ON CONFLICT DO NOTHING`.
        case insert(rows: [[String: JSONValue]], skipConflicts: Bool)
        /// Deletes the rows whose columns equal the values.
        case delete(where: [String: JSONValue])
    }

    /// The table.
    public var table: String
    /// What it does.
    public var operation: Operation

    /// The most rows one answer may insert, and the most statements it may stage.
    public static let maxRows = 1_000_000

    /// Reads `answer.write[index]` for an event of `tenant`.
    /// - Throws: `FunctionError` (not retried) naming the entry and what is wrong.
    public init(_ json: JSONValue, index: Int, tenant: String) throws {
        let at = "answer write[\(index)]"
        guard case .object(let o) = json else { throw FunctionError("\(at) must be an object", retriable: false) }
        if let table = o["insert"] {
            self.table = try Self.identifier(table, at: "\(at).insert")
            guard let rows = o["rows"]?.arrayValue, !rows.isEmpty else {
                throw FunctionError("\(at).rows must be a non-empty array of objects", retriable: false)
            }
            guard rows.count <= Self.maxRows else { throw FunctionError("\(at).rows holds \(rows.count) rows; at most \(Self.maxRows)", retriable: false) }
            var parsed: [[String: JSONValue]] = []
            for (i, row) in rows.enumerated() {
                guard case .object(let r) = row, !r.isEmpty else { throw FunctionError("\(at).rows[\(i)] must be a non-empty object", retriable: false) }
                for column in r.keys { _ = try Self.identifier(.string(column), at: "\(at).rows[\(i)]") }
                try Self.checkTenant(r, tenant: tenant, at: "\(at).rows[\(i)]")
                parsed.append(r)
            }
            let conflict = o["on_conflict"]?.stringValue
            guard conflict == nil || conflict == "nothing" else {
                throw FunctionError("\(at).on_conflict must be \"nothing\" or absent, got \(EventLimits.quoted(conflict ?? ""))", retriable: false)
            }
            operation = .insert(rows: parsed, skipConflicts: conflict == "nothing")
        } else if let table = o["delete"] {
            self.table = try Self.identifier(table, at: "\(at).delete")
            guard case .object(let conditions)? = o["where"], !conditions.isEmpty else {
                throw FunctionError("\(at).where must be an object with at least one column (a delete of every row is refused)", retriable: false)
            }
            for column in conditions.keys { _ = try Self.identifier(.string(column), at: "\(at).where") }
            try Self.checkTenant(conditions, tenant: tenant, at: "\(at).where")
            operation = .delete(where: conditions)
        } else {
            throw FunctionError("\(at) must have \"insert\" (with \"rows\") or \"delete\" (with \"where\")", retriable: false)
        }
    }

    /// The statements it runs, each with its bound parameters, in order.
    public func statements() throws -> [(sql: String, parameters: [(any PostgresEncodable)?])] {
        switch operation {
        case .insert(let rows, let skipConflicts):
            return try rows.map { row in
                let columns = row.keys.sorted()
                let sql = "INSERT INTO \(Self.quoted(table)) (\(columns.map(Self.quoted).joined(separator: ", "))) VALUES ("
                    + (1...columns.count).map { "$\($0)" }.joined(separator: ", ") + ")" + (skipConflicts ? " ON CONFLICT DO NOTHING" : "")
                return (sql, try columns.map { try Self.parameter(row[$0]!, at: "\(table).\($0)") })
            }
        case .delete(let conditions):
            let columns = conditions.keys.sorted()
            let sql = "DELETE FROM \(Self.quoted(table)) WHERE "
                + columns.enumerated().map { "\(Self.quoted($0.element)) = $\($0.offset + 1)" }.joined(separator: " AND ")
            return [(sql, try columns.map { try Self.parameter(conditions[$0]!, at: "\(table).\($0)") })]
        }
    }

    /// Runs it in the commit transaction.
    public func apply(in tx: PostgresTransaction) async throws {
        for (sql, parameters) in try statements() { try await tx.exec(sql, parameters) }
    }

    /// A lowercase SQL identifier (letters, digits, underscores; at most 63 bytes).
    static func identifier(_ value: JSONValue, at: String) throws -> String {
        guard let name = value.stringValue, let first = name.unicodeScalars.first, name.utf8.count <= 63,
              ("a"..."z").contains(first) || first == "_",
              name.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }) else {
            throw FunctionError("\(at): \(EventLimits.quoted(value.stringValue ?? value.serialized())) is not a table or column name "
                                    + "(lowercase letters, digits and _, at most 63)", retriable: false)
        }
        return name
    }

    static func quoted(_ identifier: String) -> String { "\"\(identifier)\"" }

    static func checkTenant(_ values: [String: JSONValue], tenant: String, at: String) throws {
        if let named = values["tenant"], named.stringValue != tenant {
            throw FunctionError("\(at): tenant \(EventLimits.quoted(named.stringValue ?? named.serialized())) is not the event's tenant \(EventLimits.quoted(tenant))",
                                retriable: false)
        }
    }

    /// One value as a bound parameter.
    static func parameter(_ value: JSONValue, at: String) throws -> (any PostgresEncodable)? {
        switch value {
        case .null: return nil
        case .bool(let b): return b
        case .string(let s): return s
        case .number(let n): return integral(n).map { $0 as any PostgresEncodable } ?? n
        case .array: return try arrayLiteral(value, at: at)
        case .object(let o):
            if o.count == 1, let encoded = o["$base64"] {
                guard let text = encoded.stringValue, let bytes = Data(base64Encoded: text) else {
                    throw FunctionError("\(at): \"$base64\" must be base64 text", retriable: false)
                }
                return bytes
            }
            return value.serialized()
        }
    }

    /// A whole number as an integer (so an integer column takes it), nil for any other number.
    static func integral(_ n: Double) -> Int? {
        n == n.rounded() && abs(n) < 9e15 ? Int(n) : nil
    }

    /// A Postgres array literal (`{1,2,"a b",NULL,{3,4}}`) for a JSON array of scalars or arrays.
    static func arrayLiteral(_ value: JSONValue, at: String) throws -> String {
        guard case .array(let items) = value else { preconditionFailure("arrayLiteral takes arrays") }
        let parts = try items.map { item -> String in
            switch item {
            case .null: return "NULL"
            case .bool(let b): return b ? "true" : "false"
            case .number(let n):
                guard n.isFinite else { throw FunctionError("\(at): arrays hold finite numbers", retriable: false) }
                return integral(n).map(String.init) ?? "\(n)"
            case .string(let s):
                return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
            case .array: return try arrayLiteral(item, at: at)
            case .object: throw FunctionError("\(at): an array may not hold objects (send JSON for jsonb as a string)", retriable: false)
            }
        }
        return "{" + parts.joined(separator: ",") + "}"
    }
}
