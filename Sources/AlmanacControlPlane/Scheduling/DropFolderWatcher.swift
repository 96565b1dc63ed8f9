import AlmanacFunctions
import AlmanacCore
import AlmanacKafka
import Foundation
import Logging
import ServiceLifecycle

/// Watches the drop folder and publishes `almanac.data.arrived` for each file that appears at
/// `<folder>/<tenant>/<dataset>/<file>`, as that tenant's event, once its size and
/// modification time have held still for one poll (a file still being written is not
/// announced) — the way S3 event notifications
/// announce new objects. Hidden files (`.name`) are ignored. The event id is derived from the
/// path, size and modification time, so the same file is announced once.
final class DropFolderWatcher: Service, @unchecked Sendable {
    let folder: String
    let producer: KafkaProducer
    let logger: Logger
    let interval: Duration
    private var lastSeen: [String: String] = [:]
    private var announced: Set<String> = []

    init(folder: String, producer: KafkaProducer, logger: Logger, interval: Duration = .seconds(1)) {
        self.folder = folder
        self.producer = producer
        self.logger = logger
        self.interval = interval
    }

    /// Polls until the group shuts down or the task is cancelled.
    func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.poll()
                try? await Task.sleep(for: self.interval)
            }
        }
    }

    /// One look at the folder: announces files that have settled since the last look.
    func poll() async {
        var seen: [String: String] = [:]
        for (tenant, dataset, path, stamp) in Self.files(in: folder) {
            seen[path] = stamp
            let key = path + "@" + stamp
            guard lastSeen[path] == stamp, !announced.contains(key) else { continue }
            var e = CloudEvent(id: "drop-" + FNV1a.hex(key), source: "almanac/drop-watcher", type: "almanac.data.arrived", subject: dataset,
                               json: ["dataset": .string(dataset), "url": .string("file://" + path)])
            e.tenant = tenant
            let record = e.kafkaBinary()
            do {
                try await producer.send(topic: Outbox.busTopic, key: record.key, value: record.value, headers: record.headers)
                announced.insert(key)
                logger.info("data file dropped", metadata: ["tenant": "\(tenant)", "dataset": "\(dataset)", "file": "\(path)", "event": "\(e.id)"])
            } catch {
                logger.warning("cannot announce a dropped file; will retry", metadata: ["file": "\(path)", "error": "\(error)"])
            }
        }
        lastSeen = seen
    }

    /// The regular files at `<folder>/<tenant>/<dataset>/<file>` whose tenant and dataset
    /// are slugs, with a stamp of their size and modification time. Hidden names are skipped.
    static func files(in folder: String) -> [(tenant: String, dataset: String, path: String, stamp: String)] {
        let fm = FileManager.default
        func entries(_ dir: String) -> [String] { ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).filter { !$0.hasPrefix(".") }.sorted() }
        var found: [(String, String, String, String)] = []
        for tenant in entries(folder) where Slug.isValid(tenant, maxLength: Slug.maxTenantLength) {
            for dataset in entries("\(folder)/\(tenant)") where Slug.isValid(dataset, maxLength: Slug.maxDatasetLength) {
                for file in entries("\(folder)/\(tenant)/\(dataset)") {
                    let path = "\(folder)/\(tenant)/\(dataset)/\(file)"
                    guard let a = try? fm.attributesOfItem(atPath: path), (a[.type] as? FileAttributeType) == .typeRegular else { continue }
                    found.append((tenant, dataset, path, "\((a[.size] as? NSNumber)?.intValue ?? 0)-\(((a[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0))"))
                }
            }
        }
        return found
    }
}
