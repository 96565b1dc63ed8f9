import AlmanacCore
import AlmanacKafka
import Foundation
import Logging

/// Watches the drop folder and publishes `almanac.data.arrived` for each file that appears at
/// `<folder>/<dataset>/<file>` once its size and modification time have held still for one
/// poll (a file still being written is not announced) — the way S3 event notifications
/// announce new objects. Hidden files (`.name`) are ignored. The event id is derived from the
/// path, size and modification time, so the same file is announced once.
final class DropFolderWatcher: @unchecked Sendable {
    let folder: String
    let producer: KafkaProducer
    let logger: Logger
    let interval: Duration
    private let stopped = StopFlag()
    private var lastSeen: [String: String] = [:]
    private var announced: Set<String> = []

    init(folder: String, producer: KafkaProducer, logger: Logger, interval: Duration = .seconds(1)) {
        self.folder = folder
        self.producer = producer
        self.logger = logger
        self.interval = interval
    }

    func stop() { stopped.set() }

    /// Polls until stopped or cancelled.
    func run() async {
        while !stopped.isSet && !Task.isCancelled {
            await poll()
            try? await Task.sleep(for: interval)
        }
    }

    /// One look at the folder: announces files that have settled since the last look.
    func poll() async {
        let fm = FileManager.default
        guard let datasets = try? fm.contentsOfDirectory(atPath: folder) else { return }
        var seen: [String: String] = [:]
        for dataset in datasets where !dataset.hasPrefix(".") {
            let dir = "\(folder)/\(dataset)"
            guard let files = try? fm.contentsOfDirectory(atPath: dir) else { continue }
            for file in files where !file.hasPrefix(".") {
                let path = "\(dir)/\(file)"
                guard let a = try? fm.attributesOfItem(atPath: path), (a[.type] as? FileAttributeType) == .typeRegular else { continue }
                let stamp = "\((a[.size] as? NSNumber)?.intValue ?? 0)-\(((a[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0))"
                seen[path] = stamp
                let key = path + "@" + stamp
                guard lastSeen[path] == stamp, !announced.contains(key) else { continue }
                var e = CloudEvent(id: "drop-" + FNV1a.hex(key), source: "almanac/drop-watcher", type: "almanac.data.arrived", subject: dataset,
                                   json: ["dataset": .string(dataset), "url": .string("file://" + path)])
                e.tenant = "default"
                let record = e.kafkaBinary()
                do {
                    try await producer.send(topic: Outbox.busTopic, key: record.key, value: record.value, headers: record.headers)
                    announced.insert(key)
                    logger.info("data file dropped", metadata: ["dataset": "\(dataset)", "file": "\(path)", "event": "\(e.id)"])
                } catch {
                    logger.warning("cannot announce a dropped file; will retry", metadata: ["file": "\(path)", "error": "\(error)"])
                }
            }
        }
        lastSeen = seen
    }
}
