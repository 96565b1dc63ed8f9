import AlmanacCore
import AlmanacForecast
import AlmanacKafka
import AlmanacPipeline
import AlmanacRuntime
import ArgumentParser
import Foundation

/// `almanac webhooks`: endpoints that receive pipeline events, and their deliveries.
struct WebhooksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhooks",
        abstract: "Add and list webhook endpoints; inspect and redeliver deliveries.",
        discussion: """
            Deliveries are signed per Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature \
            (v1,<base64 HMAC-SHA256 of id.timestamp.body> keyed by the secret after whsec_, base64-decoded). \
            The body is the CloudEvent in structured JSON.
            """,
        subcommands: [Add.self, List.self, RotateSecret.self, Deliveries.self, Redeliver.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add an endpoint; prints its id and its secret (shown once).")
        @OptionGroup var client: ClientOptions
        @Option(help: "The receiver's http(s) URL.") var url: String
        @Option(help: "CloudEvent types, comma-separated; a trailing * matches by prefix (almanac.forecast.*).") var events: String
        @Flag(help: "Allow a URL that resolves to a loopback or private address.") var allowPrivate = false
        @Option(help: "The tenant.") var tenant: String = "default"

        func run() async throws {
            let db = try await client.database()
            defer { Task { await db.close() } }
            do {
                let e = try await Webhooks.add(tenant: tenant, url: url, eventTypes: events.split(separator: ",").map(String.init),
                                               allowPrivate: allowPrivate, in: db)
                print("endpoint \(e.id)")
                print("secret   \(e.secret)")
                print("(the secret is shown once; verify each delivery's webhook-signature with it)")
            } catch let e as PipelineError {
                throw ValidationError(e.message)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List endpoints (secrets are not shown).")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let db = try await client.database()
            let rows = try await db.query("""
                SELECT id, tenant, url, array_to_string(event_types, ',') AS types, allow_private,
                       coalesce(to_char(disabled_at, 'YYYY-MM-DD HH24:MI') || ' (' || disabled_why || ')', '') AS disabled
                FROM webhook_endpoints ORDER BY created_at
                """)
            print("id\ttenant\turl\tevents\tallow_private\tdisabled")
            for r in rows {
                print(["id", "tenant", "url", "types", "allow_private", "disabled"].map { r.text($0) ?? "" }.joined(separator: "\t"))
            }
            await db.close()
        }
    }

    struct RotateSecret: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-secret",
            abstract: "Give an endpoint a new secret; the old one signs too until the overlap ends. Prints the new secret (shown once).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The endpoint id (ep_…).") var id: String
        @Option(help: "The tenant.") var tenant: String = "default"
        @Option(help: "How long the old secret goes on signing beside the new one (0 to 7d).") var overlap: String = "24h"

        func run() async throws {
            guard let seconds = FunctionManifest.parseDuration(.string(overlap)) else {
                throw ValidationError("--overlap must be a duration such as 30m, 24h or 0, got \(EventLimits.quoted(overlap))")
            }
            do {
                let secret = try await client.withDatabase { try await Webhooks.rotateSecret(endpoint: id, tenant: tenant, overlap: seconds, in: $0) }
                print("endpoint \(id)")
                print("secret   \(secret)")
                print("(shown once; until the overlap ends each delivery carries a v1 signature by the new secret and one by the old)")
            } catch let e as PipelineError {
                throw ValidationError(e.message)
            }
        }
    }

    struct Deliveries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List recent deliveries with their state and attempts.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Only this endpoint's.") var endpoint: String?
        @Option(help: "How many.") var limit = 50

        func run() async throws {
            let db = try await client.database()
            let rows = try await db.query("""
                SELECT id, endpoint_id, event_type, webhook_id, state, attempts, coalesce(last_status::text, '') AS status,
                       coalesce(left(last_error, 80), '') AS error, to_char(created_at, 'YYYY-MM-DD HH24:MI:SS') AS created
                FROM webhook_deliveries WHERE $1::text IS NULL OR endpoint_id = $1 ORDER BY id DESC LIMIT $2
                """, [endpoint, limit])
            print("id\tendpoint\tevent_type\twebhook_id\tstate\tattempts\tlast_status\tlast_error\tcreated")
            for r in rows {
                print(["id", "endpoint_id", "event_type", "webhook_id", "state", "attempts", "status", "error", "created"]
                    .map { r.text($0) ?? "" }.joined(separator: "\t"))
            }
            await db.close()
        }
    }

    struct Redeliver: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a delivery again (same webhook-id and body), through the notify function.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The delivery id (from `almanac webhooks deliveries`).") var id: Int

        func run() async throws {
            let db = try await client.database()
            let rows = try await db.query("""
                UPDATE webhook_deliveries d SET state = 'pending', next_attempt_at = now() FROM webhook_endpoints e
                WHERE d.id = $1 AND e.id = d.endpoint_id RETURNING e.tenant
                """, [id])
            await db.close()
            guard let row = rows.first else { throw ValidationError("no delivery \(id); see `almanac webhooks deliveries`") }
            var e = CloudEvent(id: UUID().uuidString.lowercased(), source: "almanac/cli", type: NotifyFunction.retryType, subject: nil,
                               json: ["delivery_id": .number(Double(id))])
            e.tenant = try row.decode("tenant")  // notify finds a delivery only within its endpoint's tenant
            e.traceparent = CloudEvent.newTraceparent()
            let producer = try KafkaProducer(configuration: try client.kafka())
            let r = e.kafkaBinary()
            try await producer.send(topic: Outbox.busTopic, key: r.key, value: r.value, headers: r.headers)
            print("delivery \(id) queued for redelivery")
        }
    }
}

/// `almanac query`: the latest forecast from `latest_forecasts`, as CSV.
struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the latest forecast of a dataset (or one item) as CSV.")
    @OptionGroup var client: ClientOptions
    @Option(help: "The dataset.") var dataset: String
    @Option(help: "Only this item.") var item: String?
    @Option(help: "The tenant.") var tenant: String = "default"

    func run() async throws {
        let db = try await client.database()
        let rows = try await db.query("""
            SELECT item_id, ts, forecast_id, array_to_string(quantiles, ',') AS levels, array_to_string(q, ',') AS q FROM latest_forecasts
            WHERE tenant = $1 AND dataset = $2 AND ($3::text IS NULL OR item_id = $3) ORDER BY item_id, ts
            """, [tenant, dataset, item])
        await db.close()
        guard let first = rows.first else {
            throw ValidationError("no forecast for dataset \(dataset)\(item.map { ", item \($0)" } ?? "") yet")
        }
        let levels = (first.text("levels") ?? "").split(separator: ",").compactMap { Double($0) }
        print("item_id,date," + levels.map(ForecastEngine.columnName(for:)).joined(separator: ","))
        for r in rows {
            let ts: Date = try r.decode("ts")
            print("\(CSVField.quote(r.text("item_id") ?? "")),\(RFC3339.format(ts)),\(r.text("q") ?? "")")
        }
    }
}
