import AlmanacCore
import AlmanacFunctions
import AlmanacControlPlane
import AlmanacAPI
import ArgumentParser
import Foundation

/// `almanac webhooks`: the tenant's endpoints that receive pipeline events, and their
/// deliveries, through the `/v1` API.
struct WebhooksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhooks",
        abstract: "Add, list, delete endpoints and rotate their secrets; inspect and redeliver deliveries (through the /v1 API).",
        discussion: """
            Deliveries are signed per Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature \
            (v1,<base64 HMAC-SHA256 of id.timestamp.body> keyed by the secret after whsec_, base64-decoded). \
            The body is the CloudEvent in structured JSON.
            """,
        subcommands: [Add.self, List.self, Delete.self, RotateSecret.self, Deliveries.self, Redeliver.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add an endpoint; prints its id and its secret (shown once).")
        @OptionGroup var client: ClientOptions
        @Option(help: "The receiver's http(s) URL.") var url: String
        @Option(help: "CloudEvent types, comma-separated; a trailing * matches by prefix (almanac.forecast.*).") var events: String
        @Flag(help: "Allow a URL that resolves to a loopback or private address (the installation must allow it: ALMANAC_WEBHOOKS_ALLOW_PRIVATE=1).")
        var allowPrivate = false

        func run() async throws {
            let types = events.split(separator: ",").map { JSONValue.string($0.trimmingCharacters(in: .whitespaces)) }
            let e = try await client.api().json("POST", "/v1/webhooks", json: ["url": .string(url), "events": .array(types), "allow_private": .bool(allowPrivate)])
            print("endpoint \(e.cell("id"))")
            print("secret   \(e.cell("secret"))")
            print("(the secret is shown once; verify each delivery's webhook-signature with it)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List endpoints (secrets are not shown).")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let items = try await client.api().json("GET", "/v1/webhooks")["items"]?.arrayValue ?? []
            if items.isEmpty { print("no webhook endpoints; add one with `almanac webhooks add --url URL --events TYPES`"); return }
            print(table(["id", "url", "events", "allow_private", "disabled", "created"], items.map { e in
                [e.cell("id"), e.cell("url"), (e["events"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ","),
                 e.cell("allow_private"), e.cell("disabled"), e.cell("created_at")]
            }))
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an endpoint: nothing more is sent to it (its deliveries stay listed).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The endpoint id (ep_…).") var id: String

        func run() async throws {
            try await client.api().send("DELETE", "/v1/webhooks/\(APIClient.segment(id))")
            print("deleted endpoint \(id)")
        }
    }

    struct RotateSecret: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-secret",
            abstract: "Give an endpoint a new secret; the old one signs too until the overlap ends. Prints the new secret (shown once).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The endpoint id (ep_…).") var id: String
        @Option(help: "How long the old secret goes on signing beside the new one (0 to 7d).") var overlap: String = "24h"

        func run() async throws {
            guard let seconds = FunctionManifest.parseDuration(.string(overlap)) else {
                throw ValidationError("--overlap must be a duration such as 30m, 24h or 0, got \(EventLimits.quoted(overlap))")
            }
            let r = try await client.api().json("POST", "/v1/webhooks/\(APIClient.segment(id))/rotate-secret", json: ["overlap_seconds": .number(seconds)])
            print("endpoint \(id)")
            print("secret   \(r.cell("secret"))")
            print("(shown once; until the overlap ends each delivery carries a v1 signature by the new secret and one by the old)")
        }
    }

    struct Deliveries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List recent deliveries with their state and attempts, newest first.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Only this endpoint's.") var endpoint: String?
        @Option(help: "How many (1 to 1000).") var limit = 50

        func validate() throws {
            guard (1...1000).contains(limit) else { throw ValidationError("--limit must be from 1 to 1000") }
        }

        func run() async throws {
            let api = try client.api()
            var endpoints = endpoint.map { [$0] } ?? []
            if endpoint == nil { endpoints = (try await api.json("GET", "/v1/webhooks")["items"]?.arrayValue ?? []).map { $0.cell("id") } }
            var rows: [(id: Double, cells: [String])] = []
            for e in endpoints {
                for d in try await api.all("/v1/webhooks/\(APIClient.segment(e))/deliveries", limit: limit) {
                    rows.append((d["id"]?.numberValue ?? 0, [d.cell("id"), e, d.cell("event_type"), d.cell("webhook_id"), d.cell("state"),
                                                            d.cell("attempts"), d.cell("last_status"), String(d.cell("last_error").prefix(80)), d.cell("created_at")]))
                }
            }
            if rows.isEmpty { print("no deliveries"); return }
            print(table(["id", "endpoint", "event_type", "webhook_id", "state", "attempts", "last_status", "last_error", "created"],
                        rows.sorted { $0.id > $1.id }.prefix(limit).map(\.cells)))
        }
    }

    struct Redeliver: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a delivery again (same webhook-id and body), through the notify function.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The delivery id (from `almanac webhooks deliveries`).") var id: String

        func run() async throws {
            try await client.api().send("POST", "/v1/deliveries/\(APIClient.segment(id))/redeliver")
            print("delivery \(id) queued for redelivery")
        }
    }
}

/// `almanac query`: a dataset's latest (or a given) forecast as CSV, through the `/v1` API.
struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the latest forecast of a dataset (or one item, or a given forecast) as CSV.")
    @OptionGroup var client: ClientOptions
    @Option(help: "The dataset.") var dataset: String
    @Option(help: "Only this item.") var item: String?
    @Option(help: "This forecast instead of the live one.") var forecast: String?

    func run() async throws {
        let api = try client.api()
        var cursor: String?
        var first = true
        repeat {
            // Pages of items, each as CSV; the header is printed once.
            var query: [(String, String)] = []
            if let item { query.append(("item", item)) } else { query.append(("limit", "1000")) }
            if let forecast { query.append(("forecast_id", forecast)) }
            if let cursor { query.append(("cursor", cursor)) }
            let answer = try await api.send("GET", "/v1/datasets/\(APIClient.segment(dataset))/forecast" + APIClient.query(query), accept: "text/csv")
            let text = String(decoding: answer.body, as: UTF8.self)
            print(first ? text : String(text.drop { $0 != "\n" }.dropFirst()), terminator: "")
            first = false
            cursor = answer.header("almanac-next-cursor")
        } while cursor != nil
    }
}
