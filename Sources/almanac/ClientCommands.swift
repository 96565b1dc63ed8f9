import AlmanacCore
import AlmanacKafka
import AlmanacPostgres
import AlmanacFunctions
import AlmanacControlPlane
import AlmanacAPI
import ArgumentParser
import Foundation
import Logging

/// `almanac publish`: send CloudEvents through the ingress (`POST /v1/events`), as the tenant of `ALMANAC_TOKEN`.
struct Publish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish CloudEvents through the /v1 API; prints their ids once Kafka acknowledged and Postgres archived them.",
        discussion: """
            Either --type (with --source, --subject, --data) or --file with a structured JSON CloudEvent (or a JSON array of them, \
            sent as one batch). The token's tenant is stamped on every event; a tenant may publish almanac.data.arrived and its \
            own types outside the almanac. namespace.
            """)

    @OptionGroup var client: ClientOptions
    @Option(help: "The event type, e.g. almanac.data.arrived.") var type: String?
    @Option(help: "The event source.") var source: String = "almanac/cli"
    @Option(help: "The subject (the dataset): the Kafka key.") var subject: String?
    @Option(help: "The data, as JSON text.") var data: String?
    @Option(help: "The event id (default: a new UUID).") var id: String?
    @Option(help: "A file holding a structured CloudEvent, or a JSON array of them ('-' for stdin).") var file: String?

    func run() async throws {
        let body: JSONValue
        if let file {
            let bytes = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
            do { body = try JSONValue(parsing: bytes) } catch { throw ValidationError("\(file) is not JSON: \(error)") }
        } else {
            guard let type else { throw ValidationError("give --type (and --data) or --file") }
            var json: JSONValue = .null
            if let data {
                do { json = try JSONValue(parsing: data) } catch { throw ValidationError("--data is not JSON: \(error)") }
            }
            var e = CloudEvent(id: id ?? UUID().uuidString.lowercased(), source: source, type: type, subject: subject, json: json)
            e.traceparent = CloudEvent.newTraceparent()
            body = e.structuredJSON()
        }
        let batch = body.arrayValue != nil
        let answer = try await client.api().send("POST", "/v1/events", body: Data(body.serialized().utf8),
                                                  contentType: batch ? "application/cloudevents-batch+json" : "application/cloudevents+json")
        let accepted = (try? JSONValue(parsing: answer.body))?["accepted"]?.arrayValue ?? []
        for id in accepted { print("published \(id.stringValue ?? id.serialized())") }
    }
}

/// `almanac status`: functions, instances, lag, GPU queue, dead letters.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show functions, running instances, lag, the GPU queue and dead letters.")
    @OptionGroup var client: ClientOptions
    @Option(help: "The folder of function manifests.") var functions: String?

    func run() async throws {
        let db = try await client.database()
        let manifests = try FunctionManifest.loadAll(from: functions ?? AlmanacPaths.discover().functions)
        let admin = try? KafkaAdmin(configuration: try client.kafka())
        // The same lag the launcher acts on: positions kept with the effects, then the group's commits.
        var positions: [String: [Int32: Int64]] = [:]
        if let admin, let cluster = try? await admin.clusterID() {
            positions = (try? await ConsumerPositions.load(cluster: cluster, topics: manifests.map(\.inputTopic), in: db)) ?? [:]
        }
        let instances = try await RuntimeBoard.instances(in: db)
        let counts = try await RuntimeBoard.invocationCounts(in: db)
        var rows: [[String]] = []
        for m in manifests {
            let lag: String
            if let admin, let l = try? await admin.lag(group: m.consumerGroup, topic: m.inputTopic, positions: positions[m.name] ?? [:]) {
                lag = "\(l)"
            } else { lag = "?" }
            let running = instances.filter { $0.function == m.name }.count
            let c = counts[m.name]
            rows.append([m.name, "\(running)/\(m.concurrency)", lag, m.gpu.rawValue, "\(c?.succeeded ?? 0)", "\(c?.failed ?? 0)",
                         "\(c?.deadLettered ?? 0)", c?.last.map(stamp) ?? "-"])
        }
        print("FUNCTIONS")
        print(table(["name", "instances", "lag", "gpu", "succeeded", "failed", "dead", "last invocation"], rows))
        let crashes = try await RuntimeBoard.crashLoops(atLeast: CrashLoop.loopingAfter, in: db)
        if !crashes.isEmpty {
            print("\nCRASH-LOOPING")
            print(table(["function", "exits in a row", "last exit", "next start after"], crashes.map {
                [$0.function, "\($0.consecutive)", $0.lastStatus, stamp($0.heldUntil)]
            }))
        }
        print("\nINSTANCES")
        if instances.isEmpty { print("none running (scaled to zero)") } else {
            print(table(["instance", "function", "pid", "gpu", "started"], instances.map {
                [$0.instance, $0.function, "\($0.pid)", $0.gpu ?? "-", stamp($0.started)]
            }))
        }
        let queue = try await RuntimeBoard.gpuQueue(in: db)
        print("\nGPU QUEUE")
        if queue.isEmpty { print("empty") } else {
            print(table(["function", "waiting since", "lag"], queue.map { [$0.function, stamp($0.waitingSince), "\($0.lag)"] }))
        }
        let progress = try await ProgressBoard.current(in: db)
        print("\nIN PROGRESS")
        if progress.isEmpty { print("nothing reported") } else {
            print(table(["function", "tenant", "event", "attempt", "started", "updated", "progress"], progress.map {
                [$0.function, $0.tenant, $0.eventID, "\($0.attempt)", stamp($0.started), stamp($0.updated), $0.progress.serialized()]
            }))
        }
        let dead = try await DeadLetterStore.openByStage(in: db)
        print("\nDEAD LETTERS (open)")
        if dead.isEmpty { print("none") } else { print(table(["stage", "count"], dead.map { [$0.stage, "\($0.count)"] })) }
    }
}

/// A time as `status` shows it: `2026-12-07 21:20:41` (UTC).
func stamp(_ date: Date) -> String {
    String(RFC3339.format(date).replacingOccurrences(of: "T", with: " ").prefix(19))
}

/// `almanac dlq`: the tenant's dead letters (list, show, redrive), through the `/v1` API.
struct DLQ: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect and redrive the tenant's dead letters (through the /v1 API).",
        discussion: "A record that never decoded as a CloudEvent belongs to no tenant: `almanac status` counts it, an operator reads it in dead_letters.",
        subcommands: [List.self, Show.self, Redrive.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead letters, newest first.")
        @OptionGroup var client: ClientOptions
        @Flag(help: "Include redriven and discarded ones.") var all = false
        @Option(help: "Only this stage (router or a function).") var stage: String?

        func run() async throws {
            let letters = try await client.api().all("/v1/deadletters?status=\(all ? "all" : "open")").filter { stage == nil || $0.cell("stage") == stage }
            if letters.isEmpty { print("no dead letters"); return }
            print(table(["id", "stage", "event", "type", "code", "attempts", "status", "error"], letters.map {
                [$0.cell("id"), $0.cell("stage"), $0.cell("event_id"), $0.cell("event_type"), $0.cell("error_code"), $0.cell("attempts"),
                 $0.cell("status"), String($0.cell("error").prefix(100))]
            }))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one dead letter with its error and original record.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The dead letter's id.") var id: Int64

        func run() async throws {
            let letter = try await client.api().json("GET", "/v1/deadletters/\(id)")
            for key in ["id", "stage", "status", "event_id", "event_type", "error_code", "attempts", "created_at"] {
                print("\(key): \(letter[key] == .null ? "-" : letter.cell(key))")
            }
            print("error: \(letter.cell("error"))")
            let record = letter.cell("record")
            print("record (\(letter.cell("record_encoding"))):")
            print(String(record.prefix(4096)))
        }
    }

    struct Redrive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send dead letters back to where they failed: a function's input topic, or the bus for the router.",
            discussion: "The function's processed mark for the event is cleared so it runs again; the dead letter becomes 'redriven'.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Dead letter ids.") var ids: [Int64] = []
        @Flag(help: "Redrive every open dead letter (of --stage, when given).") var all = false
        @Option(help: "With --all: only this stage.") var stage: String?

        func run() async throws {
            guard all || !ids.isEmpty else { throw ValidationError("name dead letter ids, or --all") }
            let api = try client.api()
            var chosen = ids
            if all {
                chosen += try await api.all("/v1/deadletters?status=open").filter { stage == nil || $0.cell("stage") == stage }
                    .compactMap { $0["id"]?.numberValue.map { Int64($0) } }
            }
            if chosen.isEmpty { print("nothing to redrive") }
            for id in chosen {
                let done = try await api.json("POST", "/v1/deadletters/\(id)/redrive")
                print("redrove dead letter \(id) to \(done.cell("topic"))")
            }
        }
    }
}

/// `almanac replay`: re-publish archived events.
struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-publish archived events to the bus, chosen by time range, type, subject or causation chain.",
        discussion: """
            Events keep their ids, so functions that already processed them skip them (use this after the mock broker \
            lost its memory, or to feed a new function). --new-ids gives each a fresh id (its cause recorded as the \
            original), so every subscriber handles it again.
            """)
    @OptionGroup var client: ClientOptions
    @Option(help: "From this time (RFC 3339).") var since: String?
    @Option(help: "Which time --since and --until select on: archived (when the router archived it) or event-time (its time attribute).")
    var by: String = "archived"
    @Option(help: "Until this time (RFC 3339).") var until: String?
    @Option(help: "Only this event type.") var type: String?
    @Option(help: "Only this subject.") var subject: String?
    @Option(help: "This event and everything it caused, transitively.") var causation: String?
    @Flag(help: "Give replayed events new ids so they are handled again.") var newIDs = false
    @Flag(help: "List what would be replayed, without publishing.") var dryRun = false

    func run() async throws {
        let from = try since.map { s -> Date in
            guard let d = RFC3339.parse(s) else { throw ValidationError("--since must be RFC 3339, e.g. 2026-11-23T10:00:00Z") }
            return d
        }
        let to = try until.map { s -> Date in
            guard let d = RFC3339.parse(s) else { throw ValidationError("--until must be RFC 3339") }
            return d
        }
        guard let clock = EventArchive.Clock(rawValue: by) else {
            throw ValidationError("--by must be archived or event-time, got \(by)")
        }
        let db = try await client.database()
        let filter = EventArchive.Filter(since: from, until: to, clock: clock, type: type, subject: subject, causation: causation)
        let producer = dryRun ? nil : try KafkaProducer(configuration: try client.kafka())
        var count = 0
        var cursor: EventArchive.Cursor?
        repeat {
            // Page by page, so any number of events streams through in archive order.
            let (events, next) = try await EventArchive.page(in: db, filter, after: cursor)
            for var e in events {
                if newIDs {
                    let original = e.id
                    e.id = UUID().uuidString.lowercased()
                    e.causationID = original
                }
                if let producer {
                    let r = e.kafkaBinary()
                    try await producer.send(topic: Outbox.busTopic, key: r.key, value: r.value, headers: r.headers)
                }
                print("\(dryRun ? "would replay" : "replayed") \(e.id) \(e.type) \(e.subject ?? "-")")
            }
            count += events.count
            cursor = next
        } while cursor != nil
        print(count == 0 ? "no archived events match" : "\(count) event\(count == 1 ? "" : "s")")
    }
}

/// `almanac logs`: the instances' and services' logs.
struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print logs of functions and services (JSON lines from .almanac/logs).")
    @OptionGroup var client: ClientOptions
    @Argument(help: "A function or service (serve, broker, postgres); all when omitted.") var name: String?
    @Option(help: "Only lines about this event id.") var event: String?
    @Option(help: "Only lines with this trace id.") var trace: String?
    @Flag(name: .shortAndLong, help: "Keep printing new lines.") var follow = false

    func run() async throws {
        let dir = "\(client.state)/logs"
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter {
            $0.hasSuffix(".log") && (name == nil || $0 == "\(name!).log")
        }.sorted()
        if files.isEmpty { throw ValidationError("no logs in \(dir)\(name.map { " for \($0)" } ?? "")") }
        var offsets: [String: UInt64] = [:]
        repeat {
            for f in files {
                guard let h = FileHandle(forReadingAtPath: "\(dir)/\(f)") else { continue }
                h.seek(toFileOffset: offsets[f] ?? 0)
                let data = h.readDataToEndOfFile()
                offsets[f] = h.offsetInFile
                try? h.close()
                for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                    if let event, !line.contains(event) { continue }
                    if let trace, !line.contains(trace) { continue }
                    print(files.count > 1 ? "\(f.dropLast(4)): \(line)" : String(line))
                }
            }
            if follow { try await Task.sleep(for: .milliseconds(500)) }
        } while follow
    }
}
