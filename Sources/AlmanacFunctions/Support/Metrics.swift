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

    /// Everything, in the Prometheus text exposition format. A series with a `tenant` label is
    /// shown only when it is `tenant`'s (nil: none is), so tenant names reach only those
    /// who may see them.
    public func render(tenant: String? = nil) -> String {
        lock.lock(); defer { lock.unlock() }
        var out = ""
        func header(_ name: String, _ type: String) {
            if let h = help[name] { out += "# HELP \(name) \(h)\n" }
            out += "# TYPE \(name) \(type)\n"
        }
        let own = tenant.map { MetricsRegistry.labelText(["tenant": $0]).dropFirst().dropLast() }
        func shown(_ labels: String) -> Bool {
            guard labels.contains("tenant=\"") else { return true }
            guard let own else { return false }
            let parts = MetricsRegistry.labelParts(labels)
            return parts.contains(String(own))
        }
        for name in counters.keys.sorted() {
            header(name, "counter")
            for (labels, v) in counters[name]!.sorted(by: { $0.key < $1.key }) where shown(labels) { out += "\(name)\(labels) \(MetricsRegistry.number(v))\n" }
        }
        for name in gauges.keys.sorted() {
            header(name, "gauge")
            for (labels, v) in gauges[name]!.sorted(by: { $0.key < $1.key }) where shown(labels) { out += "\(name)\(labels) \(MetricsRegistry.number(v))\n" }
        }
        for name in histograms.keys.sorted() {
            header(name, "histogram")
            for (labels, h) in histograms[name]!.sorted(by: { $0.key < $1.key }) where shown(labels) {
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

    /// The `name="value"` parts of a label text, split at the commas between them (a comma
    /// inside a quoted value is not a split).
    static func labelParts(_ labels: String) -> [String] {
        var parts: [String] = [], current = "", quoted = false, escaped = false
        for c in labels.dropFirst().dropLast() {
            if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { quoted.toggle() }
            if c == ",", !quoted { parts.append(current); current = "" } else { current.append(c) }
        }
        if !current.isEmpty { parts.append(current) }
        return parts
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
