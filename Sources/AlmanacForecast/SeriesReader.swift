import Foundation

/// Input that cannot be forecast, with where and why.
public struct ForecastInputError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The 1-based line in the input, when one is at fault.
    public var line: Int?
    /// The item, when one is at fault.
    public var item: String?
    /// What is wrong and what to do.
    public var message: String

    /// `line 12 (item H1): message`.
    public var description: String {
        var parts: [String] = []
        if let line { parts.append("line \(line)") }
        if let item { parts.append("item \(item)") }
        return parts.isEmpty ? message : "\(parts.joined(separator: ", ")): \(message)"
    }
}

/// Reads `item_id,timestamp,target_value` CSV (the Amazon Forecast target time series schema).
public enum SeriesReader {
    /// Parses CSV text into one series per item, in order of first appearance.
    /// - Parameters:
    ///   - frequency: the grid; inferred per item from its timestamps when nil.
    ///   - fill: what missing timestamps inside a series become (middlefill).
    ///   - frontfill: when given, each series is extended back to the earliest timestamp of
    ///     the items with its frequency, with values by this method.
    ///   - backfill: when given, each series is extended to the latest timestamp of the items
    ///     with its frequency.
    /// - Throws: `ForecastInputError` naming the line and item: a bad header, a short row, an
    ///   unparseable timestamp, a non-numeric, NaN or infinite value, an unsorted or
    ///   duplicate timestamp, or a timestamp off the grid.
    public static func read(csv text: String, frequency: Frequency? = nil, fill: FillPolicy = .nan, frontfill: FillPolicy? = nil,
                            backfill: FillPolicy? = nil) throws -> [TimeSeries] {
        // "\r\n" is one Character in Swift, so split on any newline rather than on "\n".
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        if lines.last?.isEmpty == true { lines.removeLast() }
        guard let headerLine = lines.first else {
            throw ForecastInputError(line: nil, item: nil, message: "the input is empty; expected a header item_id,timestamp,target_value")
        }
        let header = headerLine.split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() }
        guard let ci = header.firstIndex(of: "item_id"), let ct = header.firstIndex(of: "timestamp"),
              let cv = header.firstIndex(of: "target_value") else {
            throw ForecastInputError(line: 1, item: nil,
                                     message: "the header must name item_id, timestamp and target_value, got \"\(headerLine.prefix(120))\"")
        }
        var order: [String] = []
        var rows: [String: (times: [Date], values: [Double], lines: [Int])] = [:]
        for (n, raw) in lines.enumerated().dropFirst() {
            let lineNo = n + 1
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if line.isEmpty { continue }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count > max(ci, ct, cv) else {
                throw ForecastInputError(line: lineNo, item: nil, message: "expected \(header.count) comma-separated fields, got \(fields.count)")
            }
            let item = String(fields[ci]).trimmingCharacters(in: .whitespaces)
            guard !item.isEmpty else { throw ForecastInputError(line: lineNo, item: nil, message: "item_id is empty") }
            guard let t = parseTimestamp(fields[ct]) else {
                throw ForecastInputError(line: lineNo, item: item,
                                         message: "timestamp \"\(fields[ct])\" is not YYYY-MM-DD[ HH:MM:SS] or ISO 8601")
            }
            let text = fields[cv].trimmingCharacters(in: .whitespaces)
            guard let v = Double(text) else {
                throw ForecastInputError(line: lineNo, item: item, message: "target_value \"\(text)\" is not a number")
            }
            guard v.isFinite else {
                throw ForecastInputError(line: lineNo, item: item, message: "target_value \(text) is not finite; remove the row or give a number")
            }
            if rows[item] == nil { order.append(item); rows[item] = ([], [], []) }
            rows[item]!.times.append(t)
            rows[item]!.values.append(v)
            rows[item]!.lines.append(lineNo)
        }
        guard !order.isEmpty else { throw ForecastInputError(line: nil, item: nil, message: "the input has a header but no rows") }
        let series = try order.map { item in
            let r = rows[item]!
            for i in 1..<max(1, r.times.count) {
                if r.times[i] == r.times[i - 1] {
                    throw ForecastInputError(line: r.lines[i], item: item, message: "duplicate timestamp (also on line \(r.lines[i - 1]))")
                }
                if r.times[i] < r.times[i - 1] {
                    throw ForecastInputError(line: r.lines[i], item: item, message: "timestamps must increase within an item; this one is earlier than line \(r.lines[i - 1])")
                }
            }
            guard let freq = frequency ?? Frequency.infer(from: r.times) ?? (r.times.count < 2 ? .daily : nil) else {
                throw ForecastInputError(line: nil, item: item, message: "cannot infer the frequency from its timestamps; give --frequency")
            }
            return try regularize(item: item, times: r.times, values: r.values, lines: r.lines, frequency: freq, fill: fill)
        }
        guard frontfill != nil || backfill != nil else { return series }
        return extendToDatasetBounds(series, frontfill: frontfill, backfill: backfill)
    }

    /// Extends every series to the earliest start and latest end among the series of its
    /// frequency (items whose start is off that grid are left as they are at the front).
    static func extendToDatasetBounds(_ series: [TimeSeries], frontfill: FillPolicy?, backfill: FillPolicy?) -> [TimeSeries] {
        var bounds: [Frequency: (start: Date, end: Date)] = [:]
        for s in series {
            let end = s.timestamp(at: s.values.count - 1)
            let b = bounds[s.frequency] ?? (s.start, end)
            bounds[s.frequency] = (min(b.start, s.start), max(b.end, end))
        }
        return series.map { s in
            var out = s
            let (start, end) = bounds[s.frequency]!
            let known = s.values.filter { !$0.isNaN }
            if let backfill {
                while out.timestamp(at: out.values.count) <= end {
                    out.values.append(backfill.fill(known: known, previous: out.values.last ?? 0))
                }
            }
            if let frontfill, start < s.start {
                var steps = 0
                while s.frequency.advance(start, by: steps) < s.start { steps += 1 }
                guard abs(s.frequency.advance(start, by: steps).timeIntervalSince(s.start)) < 1 else { return out }
                let first = known.first ?? 0
                out.values = (0..<steps).map { _ in frontfill.fill(known: known, previous: first) } + out.values
                out.start = start
            }
            return out
        }
    }

    /// One item's observations (sorted by time, no duplicates) as a series on its grid.
    /// - Parameter frequency: the grid; inferred from the timestamps when nil.
    /// - Throws: `ForecastInputError` when the grid cannot be inferred or a timestamp is off it.
    public static func series(item: String, times: [Date], values: [Double], frequency: Frequency?, fill: FillPolicy) throws -> TimeSeries {
        guard !times.isEmpty else { throw ForecastInputError(line: nil, item: item, message: "the item has no observations") }
        guard let freq = frequency ?? Frequency.infer(from: times) ?? (times.count < 2 ? .daily : nil) else {
            throw ForecastInputError(line: nil, item: item, message: "cannot infer the frequency from its timestamps; set the dataset's frequency")
        }
        return try regularize(item: item, times: times, values: values, lines: Array(1...times.count), frequency: freq, fill: fill)
    }

    /// Places values on the frequency's grid, filling gaps by the policy.
    static func regularize(item: String, times: [Date], values: [Double], lines: [Int], frequency: Frequency, fill: FillPolicy) throws -> TimeSeries {
        var out: [Double] = []
        out.reserveCapacity(values.count)
        var slot = 0
        var cursor = times[0]
        for (i, t) in times.enumerated() {
            while cursor < t {
                out.append(fill.fill(known: values, previous: out.last ?? values[0]))
                slot += 1
                cursor = frequency.advance(times[0], by: slot)
                if out.count > values.count * 10 + 10_000 {
                    throw ForecastInputError(line: lines[i], item: item, message: "the gap before this row is too long for a \(frequency.rawValue) series")
                }
            }
            guard abs(cursor.timeIntervalSince(t)) < 1 else {
                throw ForecastInputError(line: lines[i], item: item, message: "timestamp is off the \(frequency.rawValue) grid that starts at \(times[0])")
            }
            out.append(values[i])
            slot += 1
            cursor = frequency.advance(times[0], by: slot)
        }
        return TimeSeries(id: item, start: times[0], frequency: frequency, values: out)
    }

    /// Parses `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]` and ISO 8601 with `T` and an optional `Z`, as UTC.
    public static func parseTimestamp<S: StringProtocol>(_ s: S) -> Date? {
        let b = Array(s.utf8.filter { $0 != 0x22 })
        func num(_ from: Int, _ n: Int) -> Int? {
            guard from + n <= b.count else { return nil }
            var v = 0
            for i in from..<(from + n) {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                v = v * 10 + Int(b[i] - 0x30)
            }
            return v
        }
        guard b.count >= 10, let y = num(0, 4), b[4] == 0x2D, let mo = num(5, 2), b[7] == 0x2D, let d = num(8, 2),
              (1...12).contains(mo), d >= 1, d <= daysIn(month: mo, year: y) else { return nil }
        var h = 0, mi = 0, sec = 0
        if b.count > 10 {
            guard b[10] == 0x20 || b[10] == 0x54, let hh = num(11, 2), b.count > 13, b[13] == 0x3A, let mm = num(14, 2) else { return nil }
            h = hh; mi = mm
            var end = 16
            if b.count > 16, b[16] == 0x3A { guard let ss = num(17, 2) else { return nil }; sec = ss; end = 19 }
            let rest = b.count - end
            guard rest == 0 || (rest == 1 && (b[end] == 0x5A || b[end] == 0x7A)), h < 24, mi < 60, sec < 60 else { return nil }
        }
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1
        let days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468
        return Date(timeIntervalSince1970: Double(days * 86400 + h * 3600 + mi * 60 + sec))
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}
