import AlmanacCore
import AlmanacFunctions
import AlmanacControlPlane
import AlmanacAPI
import ArgumentParser
import Foundation

/// `almanac deploy`: renders what runs an installation elsewhere than `up`.
struct Deploy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render the manifests that run Almanac elsewhere (Kubernetes with KEDA).",
        subcommands: [Kubernetes.self])

    /// `almanac deploy kubernetes`: Kubernetes and KEDA manifests from the function manifests and a settings file.
    struct Kubernetes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Render Kubernetes and KEDA manifests from functions/*/function.yaml and a settings file (docs/kubernetes.md).",
            discussion: "Secrets are referenced by name and key, never read: create them yourself (docs/kubernetes.md lists their keys).")
        @Option(help: "The folder of function manifests.") var functions: String?
        @Option(help: "The settings file (namespace, image, Kafka and Postgres secrets, GPU nodes).") var settings: String
        @Option(help: "The folder to write the manifests into (created; files of the same names are replaced).") var out: String

        func run() async throws {
            let settings = try DeploySettings(file: settings)
            let manifests = try FunctionManifest.loadAll(from: functions ?? AlmanacPaths.discover().functions)
            let rendered = KubernetesManifests(settings: settings, functions: manifests).files()
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            if settings.dataVolumeClaim == nil {
                warn("warning: no data.volumeClaim: each pod gets an empty /data of its own, so files uploaded through /v1 never reach "
                     + "the ingest function and exported CSVs stay in the export function's pod; name a ReadWriteMany claim "
                     + "(arrivals by http(s) or s3:// URL work either way)")
            }
            for file in rendered {
                let text = "# Rendered by `almanac deploy kubernetes`; edit the settings or the function manifests, not this file.\n"
                    + file.objects.map { "---\n" + YAMLWriter.document($0) }.joined()
                try text.write(toFile: (out as NSString).appendingPathComponent(file.name), atomically: true, encoding: .utf8)
                print("wrote \(out)/\(file.name) (\(file.objects.compactMap { $0["kind"]?.stringValue }.joined(separator: ", ")))")
            }
        }
    }
}
