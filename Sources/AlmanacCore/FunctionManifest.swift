import Foundation
import Yams

/// A function's `function.yaml`: what it subscribes to, emits, and needs to run.
///
/// ```yaml
/// name: ingest
/// run: { executable: fn-ingest }          # or { command: [python3, main.py] } for the exec adapter
/// subscriptions:
///   - type: [almanac.data.arrived]
/// emits: [almanac.dataset.imported, almanac.dataset.rejected]
/// concurrency: 2
/// timeout: 5m
/// idleTimeout: 30s
/// retries: { maxAttempts: 5, initialBackoff: 1s, maxBackoff: 5m, multiplier: 2, jitter: 0.2 }
/// resources: { gpu: none }
/// environment: { ALMANAC_DROP: .almanac/drop }
/// ```
public struct FunctionManifest: Sendable, Equatable {
    /// How an instance is started.
    public enum Run: Sendable, Equatable {
        /// A Swift executable built with the package (found in the build folder), with its arguments.
        case executable(String, arguments: [String] = [])
        /// Any program speaking JSON lines on stdin/stdout, run by the exec adapter in the function's folder.
        case command([String])
    }

    /// Whether the function needs a GPU.
    public enum GPURequirement: String, Sendable, Equatable {
        /// Never gets a GPU.
        case none
        /// Gets a GPU slot when one is free, and runs on CPU otherwise.
        case preferred
        /// Waits in the GPU queue until a slot is free.
        case required
    }

    /// Retry policy: exponential backoff with jitter.
    public struct RetryPolicy: Sendable, Equatable {
        /// Attempts in all, the first included; 1 means no retry.
        public var maxAttempts: Int
        /// Delay before the second attempt, in seconds.
        public var initialBackoff: Double
        /// Largest delay, in seconds.
        public var maxBackoff: Double
        /// Growth factor per attempt.
        public var multiplier: Double
        /// Fraction of each delay that is randomised (0…1).
        public var jitter: Double

        /// The default: 3 attempts, 0.2 s doubling to at most 30 s, 20% jitter.
        public static let `default` = RetryPolicy(maxAttempts: 3, initialBackoff: 0.2, maxBackoff: 30, multiplier: 2, jitter: 0.2)

        /// Makes a policy.
        public init(maxAttempts: Int, initialBackoff: Double, maxBackoff: Double, multiplier: Double, jitter: Double) {
            self.maxAttempts = maxAttempts
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
            self.multiplier = multiplier
            self.jitter = jitter
        }

        /// The delay before attempt `attempt + 1`, after `attempt` failures (attempt ≥ 1).
        /// - Parameter random: a number in 0..<1 (injected so tests are deterministic).
        public func backoff(afterAttempt attempt: Int, random: Double = Double.random(in: 0..<1)) -> Double {
            let base = min(maxBackoff, initialBackoff * pow(multiplier, Double(max(0, attempt - 1))))
            let spread = base * jitter
            return max(0, base - spread + 2 * spread * random)
        }
    }

    /// The function's name: `[a-z0-9-]`, which also names its topic `almanac.fn.<name>`.
    public var name: String
    /// A line saying what it does.
    public var description: String
    /// How to start it.
    public var run: Run
    /// Patterns of the events it receives; an event matching any of them is routed to it.
    public var subscriptions: [EventPattern]
    /// The event types it may emit.
    public var emits: [String]
    /// The most instances that may run at once.
    public var concurrency: Int
    /// The per-invocation deadline, in seconds.
    public var timeout: Double
    /// How long an instance waits for an event before it exits (scale to zero), in seconds.
    public var idleTimeout: Double
    /// What happens when the handler fails.
    public var retries: RetryPolicy
    /// GPU needs.
    public var gpu: GPURequirement
    /// Environment variables given to each instance.
    public var environment: [String: String]
    /// The folder holding the manifest (the exec adapter's working directory).
    public var directory: String

    /// The Kafka topic the function consumes.
    public var inputTopic: String { FunctionManifest.inputTopic(for: name) }
    /// The topic of a function's input.
    public static func inputTopic(for name: String) -> String { "almanac.fn.\(name)" }
    /// The consumer group of a function's instances.
    public var consumerGroup: String { inputTopic }

    /// Whether any subscription matches an event.
    public func subscribes(to event: CloudEvent) -> Bool {
        subscribes(toDocument: EventPattern.document(for: event))
    }

    /// Whether any subscription matches an event already rendered with `EventPattern.document(for:)`
    /// (render once, match many manifests).
    public func subscribes(toDocument document: JSONValue) -> Bool {
        subscriptions.contains { $0.matches(document) }
    }

    /// Makes a manifest in code (tests, embedded functions).
    public init(name: String, description: String = "", run: Run, subscriptions: [EventPattern], emits: [String] = [],
                concurrency: Int = 1, timeout: Double = 60, idleTimeout: Double = 30,
                retries: RetryPolicy = .default, gpu: GPURequirement = .none,
                environment: [String: String] = [:], directory: String = ".") {
        self.name = name
        self.description = description
        self.run = run
        self.subscriptions = subscriptions
        self.emits = emits
        self.concurrency = concurrency
        self.timeout = timeout
        self.idleTimeout = idleTimeout
        self.retries = retries
        self.gpu = gpu
        self.environment = environment
        self.directory = directory
    }

    /// Loads and checks a `function.yaml`.
    /// - Throws: `ConfigurationError` naming the file and the field, with what was expected.
    public init(file: String) throws {
        let text: String
        do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
            throw ConfigurationError(file: file, field: nil, message: "cannot be read: \(error.localizedDescription)")
        }
        try self.init(yaml: text, file: file)
    }

    /// Parses manifest YAML; `file` is used in errors and to find the function's folder.
    public init(yaml: String, file: String) throws {
        let loaded: Any?
        do { loaded = try Yams.load(yaml: yaml) } catch {
            throw ConfigurationError(file: file, field: nil, message: "is not valid YAML: \(error)")
        }
        guard let root = JSONValue(any: loaded), case .object(let o) = root else {
            throw ConfigurationError(file: file, field: nil, message: "must be a YAML mapping with name, run and subscriptions")
        }
        var reader = ManifestReader(file: file, object: o)
        let name = try reader.string("name", required: true)!
        guard !name.isEmpty, name.count <= 60,
              name.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D })
        else {
            throw ConfigurationError(file: file, field: "name", message: "must be 1-60 of a-z, 0-9 and '-', got \"\(name)\"")
        }
        let runValue = try reader.value("run", required: true)!
        let run: Run
        if let exe = runValue["executable"]?.stringValue, !exe.isEmpty {
            let args = runValue["arguments"]?.arrayValue?.compactMap(\.stringValue) ?? []
            run = .executable(exe, arguments: args)
        } else if case .array(let parts)? = runValue["command"], !parts.isEmpty, parts.allSatisfy({ $0.stringValue != nil }) {
            run = .command(parts.compactMap(\.stringValue))
        } else {
            throw ConfigurationError(file: file, field: "run",
                                     message: "must be {executable: NAME, arguments: [...]} or {command: [PROGRAM, ARGS…]}, got \(runValue.serialized())")
        }
        guard case .array(let subs)? = try reader.value("subscriptions", required: true) else {
            throw ConfigurationError(file: file, field: "subscriptions", message: "must be a list of event patterns")
        }
        var patterns: [EventPattern] = []
        for (i, s) in subs.enumerated() {
            do { patterns.append(try EventPattern(s)) } catch let e as PatternError {
                let sub = e.path.isEmpty ? "" : ".\(e.path)"
                throw ConfigurationError(file: file, field: "subscriptions[\(i)]\(sub)", message: e.message)
            }
        }
        let emits = try reader.stringList("emits")
        let concurrency = try reader.int("concurrency", default: 1, minimum: 1)
        let timeout = try reader.duration("timeout", default: 60)
        let idle = try reader.duration("idleTimeout", default: 30)
        var retries = RetryPolicy.default
        if let r = try reader.value("retries"), case .object(let ro) = r {
            var rr = ManifestReader(file: file, object: ro, prefix: "retries.")
            retries.maxAttempts = try rr.int("maxAttempts", default: retries.maxAttempts, minimum: 1)
            retries.initialBackoff = try rr.duration("initialBackoff", default: retries.initialBackoff)
            retries.maxBackoff = try rr.duration("maxBackoff", default: retries.maxBackoff)
            retries.multiplier = try rr.number("multiplier", default: retries.multiplier, minimum: 1)
            retries.jitter = try rr.number("jitter", default: retries.jitter, minimum: 0)
            if retries.jitter > 1 {
                throw ConfigurationError(file: file, field: "retries.jitter", message: "must be between 0 and 1, got \(retries.jitter)")
            }
            try rr.rejectUnknown()
        } else if reader.object["retries"] != nil {
            throw ConfigurationError(file: file, field: "retries", message: "must be a mapping (maxAttempts, initialBackoff, …)")
        }
        var gpu = GPURequirement.none
        if let r = try reader.value("resources") {
            guard case .object(let ro) = r else {
                throw ConfigurationError(file: file, field: "resources", message: "must be a mapping such as {gpu: none}")
            }
            var rr = ManifestReader(file: file, object: ro, prefix: "resources.")
            if let g = try rr.string("gpu") {
                guard let parsed = GPURequirement(rawValue: g) else {
                    throw ConfigurationError(file: file, field: "resources.gpu", message: "must be required, preferred or none, got \"\(g)\"")
                }
                gpu = parsed
            }
            try rr.rejectUnknown()
        }
        var environment: [String: String] = [:]
        if let env = try reader.value("environment") {
            guard case .object(let eo) = env else {
                throw ConfigurationError(file: file, field: "environment", message: "must be a mapping of NAME: value")
            }
            for (k, v) in eo {
                switch v {
                case .string(let s): environment[k] = s
                case .number, .bool: environment[k] = v.serialized()
                default: throw ConfigurationError(file: file, field: "environment.\(k)", message: "must be a string, number or boolean")
                }
            }
        }
        let description = try reader.string("description") ?? ""
        try reader.rejectUnknown()
        self.init(name: name, description: description, run: run, subscriptions: patterns, emits: emits,
                  concurrency: concurrency, timeout: timeout, idleTimeout: idle, retries: retries, gpu: gpu,
                  environment: environment, directory: (file as NSString).deletingLastPathComponent)
    }

    /// Loads every `<dir>/*/function.yaml`, sorted by name.
    /// - Throws: the first `ConfigurationError`, or one naming two functions with the same name.
    public static func loadAll(from directory: String) throws -> [FunctionManifest] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var manifests: [FunctionManifest] = []
        var seen: [String: String] = [:]
        for entry in entries.sorted() {
            let file = "\(directory)/\(entry)/function.yaml"
            guard FileManager.default.fileExists(atPath: file) else { continue }
            let m = try FunctionManifest(file: file)
            if let other = seen[m.name] {
                throw ConfigurationError(file: file, field: "name", message: "\"\(m.name)\" is already the name of \(other)")
            }
            seen[m.name] = file
            manifests.append(m)
        }
        return manifests
    }

    /// The longest duration a manifest may give (timeouts, backoffs): 7 days.
    public static let maxDuration = 604_800.0

    /// Parses `90`, `1.5`, `250ms`, `30s`, `5m`, `2h`, `30d` into seconds.
    public static func parseDuration(_ value: JSONValue) -> Double? {
        if let n = value.numberValue { return n }
        guard let s = value.stringValue?.trimmingCharacters(in: .whitespaces), !s.isEmpty else { return nil }
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        for (suffix, scale) in units where s.hasSuffix(suffix) {
            if let n = Double(s.dropLast(suffix.count)) { return n * scale }
        }
        return Double(s)
    }
}

/// Reads typed fields of a manifest mapping and names the field when one is wrong.
struct ManifestReader {
    let file: String
    let object: [String: JSONValue]
    let prefix: String
    var used: Set<String> = []

    init(file: String, object: [String: JSONValue], prefix: String = "") {
        self.file = file
        self.object = object
        self.prefix = prefix
    }

    func error(_ key: String, _ message: String) -> ConfigurationError {
        ConfigurationError(file: file, field: prefix + key, message: message)
    }

    mutating func value(_ key: String, required: Bool = false) throws -> JSONValue? {
        used.insert(key)
        guard let v = object[key], v != .null else {
            if required { throw error(key, "is required") }
            return nil
        }
        return v
    }

    mutating func string(_ key: String, required: Bool = false) throws -> String? {
        guard let v = try value(key, required: required) else { return nil }
        guard let s = v.stringValue else { throw error(key, "must be a string, got \(v.serialized())") }
        return s
    }

    mutating func stringList(_ key: String) throws -> [String] {
        guard let v = try value(key) else { return [] }
        guard case .array(let items) = v, items.allSatisfy({ $0.stringValue != nil }) else {
            throw error(key, "must be a list of strings")
        }
        return items.compactMap(\.stringValue)
    }

    mutating func int(_ key: String, default d: Int, minimum: Int) throws -> Int {
        guard let v = try value(key) else { return d }
        guard let n = v.intValue else { throw error(key, "must be a whole number, got \(v.serialized())") }
        guard n >= minimum else { throw error(key, "must be ≥ \(minimum), got \(n)") }
        return n
    }

    mutating func number(_ key: String, default d: Double, minimum: Double) throws -> Double {
        guard let v = try value(key) else { return d }
        guard let n = v.numberValue else { throw error(key, "must be a number, got \(v.serialized())") }
        guard n >= minimum else { throw error(key, "must be ≥ \(JSONValue.format(minimum)), got \(JSONValue.format(n))") }
        return n
    }

    mutating func duration(_ key: String, default d: Double) throws -> Double {
        guard let v = try value(key) else { return d }
        guard let seconds = FunctionManifest.parseDuration(v) else {
            throw error(key, "must be a duration such as 30, 500ms, 30s, 5m or 1h, got \(v.serialized())")
        }
        guard seconds >= 0 else { throw error(key, "must be ≥ 0, got \(v.serialized())") }
        guard seconds <= FunctionManifest.maxDuration else {
            throw error(key, "must be at most 7 days (604800 s), got \(v.serialized())")
        }
        return seconds
    }

    func rejectUnknown() throws {
        let unknown = Set(object.keys).subtracting(used).sorted()
        if let first = unknown.first {
            throw error(first, "is not a known field (known: \(used.sorted().joined(separator: ", ")))")
        }
    }
}

/// A configuration file or setting that is wrong, naming where.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file (or environment variable) at fault.
    public var file: String
    /// The field inside it, dotted (`retries.maxAttempts`), when known.
    public var field: String?
    /// What is wrong and what is expected.
    public var message: String

    /// Makes an error.
    public init(file: String, field: String?, message: String) {
        self.file = file
        self.field = field
        self.message = message
    }

    /// `file: field message`, e.g. `functions/train/function.yaml: retries.maxAttempts must be ≥ 1, got 0`.
    public var description: String {
        if let field { return "\(file): \(field) \(message)" }
        return "\(file): \(message)"
    }
}
