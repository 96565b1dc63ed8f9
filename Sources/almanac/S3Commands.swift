import AlmanacCore
import ArgumentParser
import Foundation

/// `almanac s3-sources`: the rules that make new objects in an S3-compatible bucket a
/// dataset's data arrivals, through the `/v1` API.
struct S3SourcesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "s3-sources",
        abstract: "Add, list and remove the S3-compatible buckets whose new objects are a dataset's data (through the /v1 API).",
        discussion: """
            The store's bucket notifications go to POST /v1/s3/notifications (with a publish token) or to the Kafka topic \
            ALMANAC_S3_NOTIFICATIONS_TOPIC; each new object under the rule's bucket and prefix becomes one almanac.data.arrived, \
            and ingest fetches it signed with the tenant's credentials named by --credentials.
            """,
        subcommands: [Add.self, List.self, Remove.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a rule: objects under --bucket and --prefix go to DATASET.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The dataset.") var dataset: String
        @Option(help: "The bucket.") var bucket: String
        @Option(help: "Only keys starting with this.") var prefix: String = ""
        @Option(help: "The store's URL, e.g. https://s3.eu-west-1.amazonaws.com or http://minio:9000.") var endpoint: String
        @Option(help: "The signing region.") var region: String = "us-east-1"
        @Flag(help: "Virtual-hosted addressing (bucket.host/key, as AWS) instead of path-style (host/bucket/key, as MinIO).") var virtualHosted = false
        @Option(help: "The name of the tenant's secret with the key pair (the operator provides it to the ingest function).") var credentials: String

        func run() async throws {
            let made = try await client.api().json("POST", "/v1/datasets/\(APIClient.segment(dataset))/s3-sources", json: [
                "bucket": .string(bucket), "prefix": .string(prefix), "endpoint": .string(endpoint), "region": .string(region),
                "path_style": .bool(!virtualHosted), "credentials": .string(credentials),
            ])
            print("source \(made.cell("id")): s3://\(made.cell("bucket"))/\(made.cell("prefix"))* → dataset \(made.cell("dataset"))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a dataset's rules.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The dataset.") var dataset: String

        func run() async throws {
            let items = try await client.api().json("GET", "/v1/datasets/\(APIClient.segment(dataset))/s3-sources")["items"]?.arrayValue ?? []
            if items.isEmpty { print("no S3 sources for \(dataset)"); return }
            print(table(["id", "bucket", "prefix", "endpoint", "region", "path_style", "credentials"], items.map { s in
                ["id", "bucket", "prefix", "endpoint", "region", "path_style", "credentials"].map { s.cell($0) }
            }))
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a rule.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The rule's id (src_…).") var id: String

        func run() async throws {
            try await client.api().send("DELETE", "/v1/s3-sources/\(APIClient.segment(id))")
            print("removed source \(id)")
        }
    }
}
