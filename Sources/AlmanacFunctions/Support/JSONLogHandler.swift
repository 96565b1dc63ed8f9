import AlmanacCore
import Foundation
import Logging

/// A swift-log handler that writes one JSON object per line:
/// `{"ts":…,"level":…,"logger":…,"msg":…, <metadata>}`.
///
/// Metadata keys carry the context (`function`, `event_id`, `trace_id`, `tenant`), so that
/// `almanac logs` and any log shipper can filter on them.
public struct JSONLogHandler: LogHandler {
    /// Metadata set on the logger.
    public var metadata: Logger.Metadata = [:]
    /// The minimum level written.
    public var logLevel: Logger.Level
    private let label: String
    private let sink: LogSink

    /// Makes a handler writing to standard error.
    public init(label: String, level: Logger.Level = .info, sink: LogSink = .standardError) {
        self.label = label
        self.logLevel = level
        self.sink = sink
    }

    /// Metadata by key.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one line.
    public func log(event: LogEvent) {
        var o: [String: JSONValue] = [
            "ts": .string(RFC3339.format(Date())), "level": .string(event.level.rawValue),
            "logger": .string(label), "msg": .string(event.message.description),
        ]
        for (k, v) in metadata { o[k] = JSONLogHandler.json(v) }
        for (k, v) in event.metadata ?? [:] { o[k] = JSONLogHandler.json(v) }
        sink.write(JSONValue.object(o).serialized() + "\n")
    }

    static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let s): return .string(s)
        case .stringConvertible(let c): return .string(c.description)
        case .array(let a): return .array(a.map(json))
        case .dictionary(let d): return .object(d.mapValues(json))
        }
    }

    /// Installs this handler for every logger in the process; level from `ALMANAC_LOG_LEVEL`.
    public static func bootstrap() {
        let level = ProcessInfo.processInfo.environment["ALMANAC_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { JSONLogHandler(label: $0, level: level) }
    }
}

/// Where log lines go.
public final class LogSink: @unchecked Sendable {
    // Guarded by `lock`: lines from several threads are written whole.
    private let lock = NSLock()
    private let handle: FileHandle

    /// A sink writing to a file handle.
    public init(handle: FileHandle) { self.handle = handle }

    /// Standard error.
    public static let standardError = LogSink(handle: .standardError)

    func write(_ line: String) {
        lock.lock()
        defer { lock.unlock() }
        handle.write(Data(line.utf8))
    }
}
