import Foundation

/// How far apart a series' observations are.
public enum Frequency: String, Sendable, CaseIterable {
    /// One per hour.
    case hourly
    /// One per day.
    case daily
    /// One per week.
    case weekly
    /// One per calendar month.
    case monthly
    /// One per calendar quarter.
    case quarterly
    /// One per calendar year.
    case yearly

    /// The default season lengths for models (hourly data has a daily and a weekly cycle).
    public var defaultSeasons: [Int] {
        switch self {
        case .hourly: return [24, 168]
        case .daily: return [7]
        case .weekly: return [52]
        case .monthly: return [12]
        case .quarterly: return [4]
        case .yearly: return [1]
        }
    }

    /// The timestamp `steps` periods after `date` (calendar arithmetic for months and longer, in UTC).
    public func advance(_ date: Date, by steps: Int) -> Date {
        switch self {
        case .hourly: return date.addingTimeInterval(Double(steps) * 3600)
        case .daily: return date.addingTimeInterval(Double(steps) * 86400)
        case .weekly: return date.addingTimeInterval(Double(steps) * 604_800)
        case .monthly, .quarterly, .yearly:
            let months = steps * (self == .monthly ? 1 : self == .quarterly ? 3 : 12)
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            return calendar.date(byAdding: .month, value: months, to: date)!
        }
    }

    /// Infers the frequency from the most common gap between consecutive timestamps.
    /// - Returns: nil when the gaps match no frequency.
    public static func infer(from timestamps: [Date]) -> Frequency? {
        guard timestamps.count >= 2 else { return nil }
        var counts: [Int: Int] = [:]
        for i in 1..<timestamps.count {
            counts[Int((timestamps[i].timeIntervalSince(timestamps[i - 1])).rounded()), default: 0] += 1
        }
        guard let gap = counts.max(by: { ($0.value, -$0.key) < ($1.value, -$1.key) })?.key else { return nil }
        switch gap {
        case 3600: return .hourly
        case 86400: return .daily
        case 604_800: return .weekly
        case 2_419_200...2_678_400: return .monthly
        case 7_776_000...7_948_800: return .quarterly
        case 31_536_000...31_622_400: return .yearly
        default: return nil
        }
    }
}

/// One item's observations on a regular grid.
public struct TimeSeries: Sendable, Equatable {
    /// The item id.
    public var id: String
    /// The first timestamp.
    public var start: Date
    /// The grid.
    public var frequency: Frequency
    /// Values in time order; NaN marks a missing value after filling with `.nan`.
    public var values: [Double]

    /// Makes a series.
    public init(id: String, start: Date, frequency: Frequency, values: [Double]) {
        self.id = id
        self.start = start
        self.frequency = frequency
        self.values = values
    }

    /// The timestamp of observation `index` (indexes past the end continue the grid).
    public func timestamp(at index: Int) -> Date { frequency.advance(start, by: index) }
}

/// How missing values are filled (Amazon Forecast's featurization methods). The same methods
/// serve the three places Amazon Forecast fills: inside a series (middlefill), before its
/// first value back to the dataset's earliest timestamp (frontfill) and after its last value
/// up to the dataset's latest (backfill).
public enum FillPolicy: Sendable, Equatable {
    /// Zero.
    case zero
    /// Not a number (models that cannot take NaN fill it by interpolation).
    case nan
    /// A fixed value.
    case value(Double)
    /// The series' mean, median, minimum or maximum.
    case mean, median, min, max
    /// The last value before the gap (the first value, before a series starts).
    case previous

    /// Parses `zero`, `nan`, `mean`, `median`, `min`, `max`, `previous` or a number.
    public init?(_ text: String) {
        switch text.lowercased() {
        case "zero": self = .zero
        case "nan": self = .nan
        case "mean": self = .mean
        case "median": self = .median
        case "min": self = .min
        case "max": self = .max
        case "previous", "ffill": self = .previous
        default:
            guard let v = Double(text), v.isFinite else { return nil }
            self = .value(v)
        }
    }

    /// The value for a gap, given the known values and the last one before the gap.
    func fill(known: [Double], previous: Double) -> Double {
        switch self {
        case .zero: return 0
        case .nan: return .nan
        case .value(let v): return v
        case .mean: return known.reduce(0, +) / Double(Swift.max(1, known.count))
        case .median:
            let s = known.sorted()
            return s.isEmpty ? 0 : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
        case .min: return known.min() ?? 0
        case .max: return known.max() ?? 0
        case .previous: return previous
        }
    }
}
