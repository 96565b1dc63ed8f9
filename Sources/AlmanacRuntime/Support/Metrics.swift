import Foundation

/// Counters, gauges and histograms, rendered in the Prometheus text format for `/metrics`.
public final class MetricsRegistry: @unchecked Sendable {
    // Every map is guarded by `lock`.
    private let lock = NSLock()
    private var counters: [String: [String: Double]] = [:]
    private var gauges: [String: [String: Double]] = [:]
    private var histograms: [String: [String: Histogram]] = [:]
    private var help: [String: String] = [:]

    /// The process-wide registry.
    public static let shared = MetricsRegistry()

    /// Makes an empty registry.
    public init() {}

    struct Histogram {
        static let bounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
        var buckets = [Double](repeating: 0, count: bounds.count)
        var sum = 0.0
        var count = 0.0
    }

    /// Adds to a counter.
    public func increment(_ name: String, by amount: Double = 1, labels: [String: String] = [:], help text: String = "") {
        let key = MetricsRegistry.labelText(labels)
        lock.lock(); defer { lock.unlock() }
        counters[name, default: [:]][key, default: 0] += amount
        if !text.isEmpty { help[name] = text }
    }

    /// Sets a gauge.
    public func set(_ name: String, _ value: Double, labels: [String: String] = [:], help text: String = "") {
        let key = MetricsRegistry.labelText(labels)
        lock.lock(); defer { lock.unlock() }
        gauges[name, default: [:]][key] = value
        if !text.isEmpty { help[name] = text }
    }

    /// Records an observation (seconds) in a histogram.
    public func observe(_ name: String, _ seconds: Double, labels: [String: String] = [:], help text: String = "") {
        let key = MetricsRegistry.labelText(labels)
        lock.lock(); defer { lock.unlock() }
        var h = histograms[name, default: [:]][key] ?? Histogram()
        for (i, b) in Histogram.bounds.enumerated() where seconds <= b { h.buckets[i] += 1 }
        h.sum += seconds
        h.count += 1
        histograms[name, default: [:]][key] = h
        if !text.isEmpty { help[name] = text }
    }

    /// The value of a counter (tests and `status`).
    public func counter(_ name: String, labels: [String: String] = [:]) -> Double {
        lock.lock(); defer { lock.unlock() }
        return counters[name]?[MetricsRegistry.labelText(labels)] ?? 0
    }

    /// Everything, in the Prometheus text exposition format.
    public func render() -> String {
        lock.lock(); defer { lock.unlock() }
        var out = ""
        func header(_ name: String, _ type: String) {
            if let h = help[name] { out += "# HELP \(name) \(h)\n" }
            out += "# TYPE \(name) \(type)\n"
        }
        for name in counters.keys.sorted() {
            header(name, "counter")
            for (labels, v) in counters[name]!.sorted(by: { $0.key < $1.key }) { out += "\(name)\(labels) \(MetricsRegistry.number(v))\n" }
        }
        for name in gauges.keys.sorted() {
            header(name, "gauge")
            for (labels, v) in gauges[name]!.sorted(by: { $0.key < $1.key }) { out += "\(name)\(labels) \(MetricsRegistry.number(v))\n" }
        }
        for name in histograms.keys.sorted() {
            header(name, "histogram")
            for (labels, h) in histograms[name]!.sorted(by: { $0.key < $1.key }) {
                let inner = labels.isEmpty ? "" : String(labels.dropFirst().dropLast()) + ","
                for (i, b) in Histogram.bounds.enumerated() {
                    out += "\(name)_bucket{\(inner)le=\"\(b)\"} \(MetricsRegistry.number(h.buckets[i]))\n"
                }
                out += "\(name)_bucket{\(inner)le=\"+Inf\"} \(MetricsRegistry.number(h.count))\n"
                out += "\(name)_sum\(labels) \(h.sum)\n\(name)_count\(labels) \(MetricsRegistry.number(h.count))\n"
            }
        }
        return out
    }

    static func number(_ v: Double) -> String { v.rounded() == v && abs(v) < 1e15 ? String(Int64(v)) : "\(v)" }

    static func labelText(_ labels: [String: String]) -> String {
        guard !labels.isEmpty else { return "" }
        let parts = labels.sorted { $0.key < $1.key }.map { k, v in
            "\(k)=\"\(v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n"))\""
        }
        return "{" + parts.joined(separator: ",") + "}"
    }
}
