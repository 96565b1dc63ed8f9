import AlmanacCore
import AlmanacKafka
import AlmanacPipeline
import AlmanacFunctions
import AlmanacControlPlane
import AlmanacAPI
import Foundation

/// The topics an installation runs on: the bus, the dead letters, each function's input
/// topic, and the bucket-notification topics `ALMANAC_S3_NOTIFICATIONS_TOPIC` names. `up`, the
/// mock broker and `setup` create them; `setup` and `serve` check their durability.
func installationTopics(_ manifests: [FunctionManifest], env: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
    [Outbox.busTopic, DeadLetter.topic] + manifests.map(\.inputTopic) + S3NotificationRelay.configuredTopics(env)
}
