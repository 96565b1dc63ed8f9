import AlmanacCore
import AlmanacHTTP
import AlmanacKafka
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import Testing

/// Starts a real HTTP server on a free loopback port for the duration of `body`.
func withHTTPServer(_ configure: (Router<BasicRequestContext>) -> Void, _ body: (Int) async throws -> Void) async throws {
    let router = Router()
    configure(router)
    let ports = AsyncStream<Int>.makeStream()
    let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                          onServerRunning: { ports.continuation.yield($0.localAddress?.port ?? 0) })
    let server = Task { try await app.runService(gracefulShutdownSignals: []) }
    var port = 0
    for await p in ports.stream { port = p; break }
    defer { server.cancel() }
    try await body(port)
}

@Suite struct HTTPClientTests {
    @Test func getPostHeadersRedirectsTimeoutsAndReuse() async throws {
        try await withHTTPServer({ router in
            router.get("/hello") { _, _ in
                Response(status: .ok, headers: [.contentType: "text/plain", HTTPField.Name("x-test")!: "yes"],
                         body: .init(byteBuffer: ByteBuffer(string: "hi")))
            }
            router.post("/echo") { request, _ in
                var r = request
                let body = try await r.collectBody(upTo: 1 << 20)
                let sig = request.headers[HTTPField.Name("webhook-signature")!] ?? "-"
                return Response(status: .created, headers: [HTTPField.Name("x-sig")!: sig], body: .init(byteBuffer: body))
            }
            router.get("/moved") { _, _ in Response(status: .found, headers: [.location: "/hello"]) }
            router.get("/slow") { _, _ in
                try await Task.sleep(for: .seconds(3))
                return "late"
            }
        }) { port in
            let client = HTTPClient()
            let base = "http://127.0.0.1:\(port)"
            let get = try await client.send(HTTPClientRequest(method: "GET", url: "\(base)/hello"))
            #expect(get.status == 200)
            #expect(String(decoding: get.body, as: UTF8.self) == "hi")
            #expect(get.header("X-Test") == "yes")
            let again = try await client.send(HTTPClientRequest(method: "GET", url: "\(base)/hello"))
            #expect(again.reusedConnection, "the second request reuses the kept connection")

            let post = try await client.send(HTTPClientRequest(method: "POST", url: "\(base)/echo", headers: [("webhook-signature", "v1,abc")],
                                                         body: Data("{\"a\":1}".utf8)))
            #expect(post.status == 201)
            #expect(post.body == Data("{\"a\":1}".utf8))
            #expect(post.header("x-sig") == "v1,abc")

            // `resolve` pins a name to addresses: `pinned.invalid` resolves nowhere else.
            let pinned = try await client.send(HTTPClientRequest(method: "GET", url: "http://pinned.invalid:\(port)/hello",
                                                                 resolve: ["pinned.invalid:\(port):127.0.0.1"]))
            #expect(pinned.status == 200)
            #expect(String(decoding: pinned.body, as: UTF8.self) == "hi")

            let moved = try await client.send(HTTPClientRequest(method: "GET", url: "\(base)/moved"))
            #expect(moved.status == 302, "redirects are not followed unless asked")
            let followed = try await client.send(HTTPClientRequest(method: "GET", url: "\(base)/moved", followRedirects: true))
            #expect(followed.status == 200)

            await #expect {
                _ = try await client.send(HTTPClientRequest(method: "GET", url: "\(base)/slow", timeout: 0.5))
            } throws: { ($0 as? HTTPClientError)?.code == .timeout }
        }
        await #expect {
            _ = try await HTTPClient().send(HTTPClientRequest(method: "GET", url: "http://127.0.0.1:1/x", timeout: 2))
        } throws: { ($0 as? HTTPClientError)?.code == .connection }
        await #expect {
            _ = try await HTTPClient().send(HTTPClientRequest(method: "GET", url: "ftp://127.0.0.1/x"))
        } throws: { ($0 as? HTTPClientError)?.code == .invalidRequest }
    }
}

@Suite(.serialized) struct IngressTests {
    @Test func acceptsStructuredBinaryAndBatchEventsForItsTenantOnly() async throws {
        let d = try await TestDeployment(functions: [TestFunction(name: "ingested", subscribe: "test.http")])
        let token = TenantDirectory.newToken()
        try await TenantDirectory.ensure(tenant: "acme", token: token, in: d.db)
        try await TenantDirectory.ensure(tenant: "other", token: TenantDirectory.newToken(), in: d.db)
        try await d.startControlPlane()
        var port: Int?
        for _ in 0..<100 where port == nil {
            port = d.plane?.boundHTTPPort
            try await Task.sleep(for: .milliseconds(50))
        }
        let base = "http://127.0.0.1:\(try #require(port))"
        let client = HTTPClient()
        let auth = ("Authorization", "Bearer \(token)")

        let structured = CloudEvent(id: "s-1", source: "erp", type: "test.http", json: ["n": 1])
        let r1 = try await client.send(HTTPClientRequest(method: "POST", url: "\(base)/events",
                                                   headers: [auth, ("Content-Type", cloudEventsJSONType)], body: structured.structuredJSON().serializedData()))
        #expect(r1.status == 202)
        #expect(String(decoding: r1.body, as: UTF8.self).contains("s-1"))

        let binary = CloudEvent(id: "b-1", source: "erp", type: "test.http", json: ["n": 2]).httpBinary()
        let r2 = try await client.send(HTTPClientRequest(method: "POST", url: "\(base)/events", headers: [auth] + binary.headers, body: binary.body))
        #expect(r2.status == 202)

        let batch = JSONValue.array([CloudEvent(id: "k-1", source: "erp", type: "test.http", json: ["n": 3]).structuredJSON(),
                                     CloudEvent(id: "k-2", source: "erp", type: "test.http", json: ["n": 4]).structuredJSON()])
        let r3 = try await client.send(HTTPClientRequest(method: "POST", url: "\(base)/events",
                                                   headers: [auth, ("Content-Type", cloudEventsBatchJSONType)], body: batch.serializedData()))
        #expect(r3.status == 202)

        // 202 means Kafka has them: they are routed and handled, stamped with the token's tenant.
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM test_effects", atLeast: 4) == 4)
        #expect(try await d.waitForCount("SELECT count(*) AS n FROM event_archive WHERE tenant = 'acme'", atLeast: 4) == 4)

        let noToken = try await client.send(HTTPClientRequest(method: "POST", url: "\(base)/events", headers: [("Content-Type", cloudEventsJSONType)],
                                                        body: structured.structuredJSON().serializedData()))
        #expect(noToken.status == 401)
        let badToken = try await client.send(HTTPClientRequest(method: "POST", url: "\(base)/events", headers: [("Authorization", "Bearer nope")],
                                                         body: Data()))
        #expect(badToken.status == 401)
        var foreign = structured
        foreign.id = "f-1"
        foreign.tenant = "other"
        let r4 = try await client.send(HTTPClientRequest(method: "POST", url: "\(base)/events", headers: [auth, ("Content-Type", cloudEventsJSONType)],
                                                   body: foreign.structuredJSON().serializedData()))
        #expect(r4.status == 403)
        let invalid = try await client.send(HTTPClientRequest(method: "POST", url: "\(base)/events", headers: [auth, ("Content-Type", cloudEventsJSONType)],
                                                        body: Data(#"{"specversion":"1.0","source":"x"}"#.utf8)))
        #expect(invalid.status == 400)
        #expect(String(decoding: invalid.body, as: UTF8.self).contains("missing required attributes 'id', 'type'"))

        #expect(try await client.send(HTTPClientRequest(method: "GET", url: "\(base)/healthz")).status == 200)
        #expect(try await client.send(HTTPClientRequest(method: "GET", url: "\(base)/readyz")).status == 200)
        let metrics = String(decoding: try await client.send(HTTPClientRequest(method: "GET", url: "\(base)/metrics")).body, as: UTF8.self)
        for name in ["almanac_events_routed_total", "almanac_invocations_recorded_total", "almanac_function_lag",
                     "almanac_function_instances", "almanac_ingress_events_total"] {
            #expect(metrics.contains(name), "metrics has \(name)")
        }
        await d.shutdown()
    }
}
