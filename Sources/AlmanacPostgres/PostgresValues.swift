import CLibPQ
import Foundation

/// A Swift value that can be bound as a statement parameter (sent in Postgres text form).
public protocol PostgresEncodable: Sendable {
    /// The value in Postgres's text input format.
    var postgresText: String { get }
}

/// A Swift value that can be read from a column (received in Postgres text form).
public protocol PostgresDecodable {
    /// Parses Postgres's text output format; nil when the text is not such a value.
    init?(postgresText: String)
}

extension String: PostgresEncodable, PostgresDecodable {
    /// The string itself.
    public var postgresText: String { self }
    /// The text itself.
    public init?(postgresText: String) { self = postgresText }
}

extension Int: PostgresEncodable, PostgresDecodable {
    /// Decimal digits.
    public var postgresText: String { String(self) }
    /// Parses an integer column.
    public init?(postgresText: String) { self.init(postgresText) }
}

extension Int32: PostgresEncodable, PostgresDecodable {
    /// Decimal digits.
    public var postgresText: String { String(self) }
    /// Parses an integer column.
    public init?(postgresText: String) { self.init(postgresText) }
}

extension Int64: PostgresEncodable, PostgresDecodable {
    /// Decimal digits.
    public var postgresText: String { String(self) }
    /// Parses a bigint column.
    public init?(postgresText: String) { self.init(postgresText) }
}

extension Double: PostgresEncodable, PostgresDecodable {
    /// Round-trip decimal text; `NaN`, `Infinity` and `-Infinity` as Postgres spells them.
    public var postgresText: String {
        if isNaN { return "NaN" }
        if isInfinite { return self > 0 ? "Infinity" : "-Infinity" }
        return "\(self)"
    }
    /// Parses a float or numeric column.
    public init?(postgresText: String) {
        switch postgresText {
        case "NaN": self = .nan
        case "Infinity": self = .infinity
        case "-Infinity": self = -.infinity
        default: self.init(postgresText)
        }
    }
}

extension Bool: PostgresEncodable, PostgresDecodable {
    /// `t` or `f`.
    public var postgresText: String { self ? "t" : "f" }
    /// Parses a boolean column.
    public init?(postgresText: String) {
        switch postgresText {
        case "t", "true": self = true
        case "f", "false": self = false
        default: return nil
        }
    }
}

extension Date: PostgresEncodable, PostgresDecodable {
    /// ISO 8601 in UTC with microseconds; a date outside the years 0001–9999 (or not
    /// finite) is written as the nearest end of that range, so no date can trap here.
    public var postgresText: String {
        let raw = timeIntervalSince1970
        let seconds = raw.isNaN ? 0 : min(max(raw, -62_135_596_800), 253_402_300_799)
        var whole = time_t(seconds.rounded(.down))
        var micros = Int(((seconds - seconds.rounded(.down)) * 1_000_000).rounded())
        if micros >= 1_000_000 { micros -= 1_000_000; whole += 1 }
        var parts = tm()
        gmtime_r(&whole, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), micros)
    }
    /// Parses a timestamptz column (`2026-11-23 10:00:00.123456+00`).
    public init?(postgresText: String) {
        guard let d = PostgresTimestamp.parse(postgresText) else { return nil }
        self = d
    }
}

extension Data: PostgresEncodable, PostgresDecodable {
    /// bytea hex form, `\x0a1b…`.
    public var postgresText: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8](repeating: 0, count: 2 + count * 2)
        out[0] = UInt8(ascii: "\\")
        out[1] = UInt8(ascii: "x")
        var i = 2
        for b in self {
            out[i] = digits[Int(b >> 4)]
            out[i + 1] = digits[Int(b & 0xF)]
            i += 2
        }
        return String(decoding: out, as: UTF8.self)
    }
    /// Parses a bytea column in hex form.
    public init?(postgresText: String) {
        let b = Array(postgresText.utf8)
        guard b.count >= 2, b[0] == UInt8(ascii: "\\"), b[1] == UInt8(ascii: "x"), b.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            case 0x41...0x46: return c - 0x41 + 10
            default: return nil
            }
        }
        var out = Data(capacity: (b.count - 2) / 2)
        var i = 2
        while i < b.count {
            guard let hi = nibble(b[i]), let lo = nibble(b[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        self = out
    }
}

extension UUID: PostgresEncodable, PostgresDecodable {
    /// Lowercase canonical form.
    public var postgresText: String { uuidString.lowercased() }
    /// Parses a uuid column.
    public init?(postgresText: String) { self.init(uuidString: postgresText) }
}

extension Array: PostgresEncodable where Element: PostgresEncodable {
    /// An array literal, `{"a","b"}`, every element quoted and escaped.
    public var postgresText: String {
        PostgresArrayLiteral.text(map { Optional($0) })
    }
}

/// An array parameter whose elements may be NULL.
public struct PostgresNullableArray<Element: PostgresEncodable>: PostgresEncodable {
    /// The elements.
    public var elements: [Element?]
    /// Wraps elements.
    public init(_ elements: [Element?]) { self.elements = elements }
    /// An array literal with unquoted NULLs.
    public var postgresText: String {
        PostgresArrayLiteral.text(elements)
    }
}

/// Postgres's array input syntax.
enum PostgresArrayLiteral {
    /// `{"a","b",NULL}`: elements quoted, with `"` and `\` escaped; nil is NULL.
    static func text(_ elements: [(any PostgresEncodable)?]) -> String {
        var out = "{"
        for (i, e) in elements.enumerated() {
            if i > 0 { out += "," }
            guard let e else { out += "NULL"; continue }
            out += "\""
            for ch in e.postgresText.unicodeScalars {
                if ch == "\"" || ch == "\\" { out += "\\" }
                out.unicodeScalars.append(ch)
            }
            out += "\""
        }
        return out + "}"
    }
}

enum PostgresTimestamp {
    /// Parses `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]` (the session is UTC, so the offset is usually +00).
    static func parse(_ text: String) -> Date? {
        let b = Array(text.utf8)
        guard b.count >= 19 else { return nil }
        func num(_ from: Int, _ n: Int) -> Int? {
            guard from + n <= b.count else { return nil }
            var v = 0
            for i in from..<(from + n) {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                v = v * 10 + Int(b[i] - 0x30)
            }
            return v
        }
        guard let y = num(0, 4), let mo = num(5, 2), let d = num(8, 2), let h = num(11, 2), let mi = num(14, 2),
              let s = num(17, 2) else { return nil }
        var i = 19
        var fraction = 0.0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 0.1
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                fraction += Double(b[i] - 0x30) * scale
                scale /= 10
                i += 1
            }
        }
        var offset = 0
        if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
            guard let oh = num(i + 1, 2) else { return nil }
            var om = 0
            if i + 3 < b.count, b[i + 3] == UInt8(ascii: ":"), let m = num(i + 4, 2) { om = m }
            offset = sign * (oh * 3600 + om * 60)
        }
        let y2 = mo <= 2 ? y - 1 : y
        let era = (y2 >= 0 ? y2 : y2 - 399) / 400
        let yoe = y2 - era * 400
        let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1
        let days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468
        return Date(timeIntervalSince1970: Double(days * 86400 + h * 3600 + mi * 60 + s - offset) + fraction)
    }
}

/// The rows a statement returned, decoded on demand from Postgres's text format.
public struct PostgresRows: Sendable, Sequence {
    /// Column names, in order.
    public let columns: [String]
    /// Cell texts by row then column; nil is NULL.
    let cells: [[String?]]
    /// Rows affected by an INSERT, UPDATE, DELETE or COPY.
    public let affectedRows: Int

    init(result: OpaquePointer?) {
        guard let result else { columns = []; cells = []; affectedRows = 0; return }
        let nf = Int(PQnfields(result))
        let nt = Int(PQntuples(result))
        columns = (0..<nf).map { String(cString: PQfname(result, Int32($0))) }
        var rows: [[String?]] = []
        rows.reserveCapacity(nt)
        for r in 0..<nt {
            var row: [String?] = []
            row.reserveCapacity(nf)
            for c in 0..<nf {
                if PQgetisnull(result, Int32(r), Int32(c)) == 1 { row.append(nil) }
                else { row.append(String(cString: PQgetvalue(result, Int32(r), Int32(c)))) }
            }
            rows.append(row)
        }
        cells = rows
        affectedRows = Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    /// The number of rows.
    public var count: Int { cells.count }
    /// Whether no rows came back.
    public var isEmpty: Bool { cells.isEmpty }
    /// The first row, if any.
    public var first: PostgresRow? { cells.isEmpty ? nil : PostgresRow(columns: columns, cells: cells[0]) }
    /// A row by index.
    public subscript(index: Int) -> PostgresRow { PostgresRow(columns: columns, cells: cells[index]) }

    /// Iterates the rows.
    public func makeIterator() -> AnyIterator<PostgresRow> {
        var i = 0
        return AnyIterator {
            guard i < cells.count else { return nil }
            defer { i += 1 }
            return PostgresRow(columns: columns, cells: cells[i])
        }
    }
}

/// One row; cells are decoded into the requested Swift type.
public struct PostgresRow: Sendable {
    let columns: [String]
    let cells: [String?]

    /// The raw text of a column, nil for NULL.
    public func text(_ column: String) -> String? {
        guard let i = columns.firstIndex(of: column) else { return nil }
        return cells[i]
    }

    /// The numbers of a column holding `array_to_string(numbers, ',')` (empty for NULL or none).
    public func numbers(_ column: String) -> [Double] {
        (text(column) ?? "").split(separator: ",").compactMap { Double($0) }
    }

    /// Decodes a non-NULL column.
    /// - Throws: `PostgresError.decoding` naming the column, when it is missing, NULL or of another type.
    public func decode<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        guard let i = columns.firstIndex(of: column) else {
            throw PostgresError(.decoding, "no column '\(column)' in the result (columns: \(columns.joined(separator: ", ")))", query: nil)
        }
        guard let text = cells[i] else {
            throw PostgresError(.decoding, "column '\(column)' is NULL, expected \(T.self)", query: nil)
        }
        guard let value = T(postgresText: text) else {
            throw PostgresError(.decoding, "column '\(column)' holds \"\(text.prefix(80))\", which is not \(T.self)", query: nil)
        }
        return value
    }

    /// Decodes a column that may be NULL.
    public func decodeIfPresent<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T? {
        guard let i = columns.firstIndex(of: column) else {
            throw PostgresError(.decoding, "no column '\(column)' in the result", query: nil)
        }
        guard cells[i] != nil else { return nil }
        return try decode(column, as: type)
    }
}
