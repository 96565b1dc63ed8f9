import Foundation

/// The bounds Almanac holds every event to, beyond the CloudEvents 1.0 rules: what the
/// bus, the archive (Postgres `text`, `timestamptz` and `jsonb`) and every function can
/// carry. An event outside them is refused at the door (HTTP 400) or dead-lettered.
public enum EventLimits {
    /// The longest value of one attribute, in UTF-8 bytes.
    public static let maxAttributeBytes = 2048
    /// The most extension attributes on one event.
    public static let maxExtensions = 32
    /// The largest event: its data plus every attribute name and value, in bytes
    /// (under librdkafka's default `message.max.bytes` of 1,000,000 with room for headers).
    public static let maxEventBytes = 512 * 1024
    /// The deepest nesting of arrays and objects in JSON data.
    public static let maxDataDepth = 64
    /// The most events in one HTTP batch.
    public static let maxBatchEvents = 1000
    /// The earliest `time`: 0001-01-01T00:00:00Z (Postgres has no year 0).
    public static let earliestTime = Date(timeIntervalSince1970: Double(RFC3339.daysFromCivil(year: 1, month: 1, day: 1)) * 86400)
    /// The latest `time`: 9999-12-31T23:59:59Z (RFC 3339 years have four digits).
    public static let latestTime = Date(timeIntervalSince1970: Double(RFC3339.daysFromCivil(year: 10000, month: 1, day: 1)) * 86400 - 1)

    /// Whether text holds a character the CloudEvents String type excludes: a C0 or C1
    /// control character or DEL (U+0000–U+001F, U+007F–U+009F).
    public static func hasControlCharacter(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
    }

    /// Text safe to put in an error message or a log line: control characters written as
    /// `\u00XX`, cut to `limit` characters, in double quotes.
    public static func quoted(_ text: String, limit: Int = 80) -> String {
        var out = "\""
        var count = 0
        for scalar in text.unicodeScalars {
            if count == limit { out += "…"; break }
            if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar == "\"" || scalar == "\\" {
                out += scalar == "\"" ? "\\\"" : scalar == "\\" ? "\\\\" : String(format: "\\u%04x", scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
            count += 1
        }
        return out + "\""
    }

    /// Why JSON bytes cannot be stored as Postgres `jsonb` or are nested too deep, or nil
    /// when they can. A single pass over the bytes: it finds `\u0000` escapes inside strings
    /// (jsonb has no NUL) and counts nesting outside them. It does not check that the bytes
    /// are JSON at all; text that is not JSON is archived as `data_base64`.
    public static func jsonStorageProblem(_ data: Data) -> String? {
        data.withUnsafeBytes { raw -> String? in
            let b = raw.bindMemory(to: UInt8.self)
            var inString = false
            var depth = 0
            var i = 0
            while i < b.count {
                let c = b[i]
                if inString {
                    if c == 0x5C {  // backslash: look at the escape
                        if i + 5 < b.count, b[i + 1] == 0x75, b[i + 2] == 0x30, b[i + 3] == 0x30, b[i + 4] == 0x30, b[i + 5] == 0x30 {
                            return "data holds the escape \\u0000 at byte \(i): Postgres cannot store a NUL character in JSON text"
                        }
                        i += 2
                        continue
                    }
                    if c == 0x22 { inString = false }
                } else if c == 0x22 {
                    inString = true
                } else if c == 0x5B || c == 0x7B {
                    depth += 1
                    if depth > maxDataDepth {
                        return "data nests arrays and objects deeper than \(maxDataDepth) levels (at byte \(i))"
                    }
                } else if c == 0x5D || c == 0x7D {
                    depth -= 1
                }
                i += 1
            }
            return nil
        }
    }
}
