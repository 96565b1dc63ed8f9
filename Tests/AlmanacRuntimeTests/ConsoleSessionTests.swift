import AlmanacCore
import AlmanacHTTP
@testable import AlmanacPipeline
@testable import AlmanacAPI
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Testing

/// The console's pure parts: the session cookie and its CSRF value.
@Suite struct ConsoleSessionUnitTests {
    @Test func theCookieIsFoundAmongOthersAndOnlyWhenPlausible() {
        let secret = "ses_" + String(repeating: "a", count: 43)
        #expect(ConsoleSession.secret(in: [("cookie", "theme=dark; almanac_session=\(secret); lang=en")]) == secret)
        #expect(ConsoleSession.secret(in: [("cookie", "theme=dark"), ("cookie", "almanac_session=\(secret)")]) == secret)
        #expect(ConsoleSession.secret(in: [("cookie", "almanac_sessionx=\(secret)")]) == nil)
        #expect(ConsoleSession.secret(in: [("cookie", "almanac_session=short")]) == nil)
        #expect(ConsoleSession.secret(in: [("cookie", "almanac_session=" + String(repeating: "b", count: 500))]) == nil)
        #expect(ConsoleSession.secret(in: [("x-cookie", "almanac_session=\(secret)")]) == nil)
    }

    @Test func theCSRFValueBelongsToOneSessionAndMustBeSent() {
        let a = "ses_" + String(repeating: "a", count: 43), b = "ses_" + String(repeating: "b", count: 43)
        #expect(ConsoleSession.csrf(for: a) == ConsoleSession.csrf(for: a))
        #expect(ConsoleSession.csrf(for: a) != ConsoleSession.csrf(for: b))
        #expect(!ConsoleSession.csrf(for: a).contains(a))
        #expect(ConsoleSession.csrfMatches([("x-almanac-csrf", ConsoleSession.csrf(for: a))], secret: a))
        #expect(!ConsoleSession.csrfMatches([("x-almanac-csrf", ConsoleSession.csrf(for: b))], secret: a))
        #expect(!ConsoleSession.csrfMatches([("x-almanac-csrf", "")], secret: a))
        #expect(!ConsoleSession.csrfMatches([], secret: a))
    }

    @Test func theCookieIsHttpOnlyAndStrict() {
        let c = ConsoleSession.setCookie("ses_x", maxAge: 60, secure: false)
        #expect(c == "almanac_session=ses_x; Path=/; Max-Age=60; HttpOnly; SameSite=Strict")
        #expect(ConsoleSession.setCookie("", maxAge: 0, secure: true).hasSuffix("; Secure"))
    }
}

/// The console's server side over real HTTP, Postgres and Kafka: its files with their security
/// headers, the sign-in that trades a token for a cookie, the cookie acting only with its CSRF
/// value and only while the session and its token work, and the API reads the console uses,
/// scoped by tenant.
@Suite(.serialized) struct ConsoleServerTests {
    let api = APITests()

    struct Answer {
        var status: Int
        var body: String
        var response: HTTPClientResponse
        var json: JSONValue { (try? JSONValue(parsing: body)) ?? .null }
    }

    func send(_ base: String, _ method: String, _ path: String, headers: [(String, String)] = [], body: String? = nil) async throws -> Answer {
        let r = try await HTTPClient().send(HTTPClientRequest(method: method, url: base + path, headers: headers, body: body.map { Data($0.utf8) }))
        return Answer(status: r.status, body: String(decoding: r.body, as: UTF8.self), response: r)
    }

    /// Signs in with `token`: the cookie's secret and the CSRF value.
    func signIn(_ base: String, _ token: String) async throws -> (secret: String, csrf: String) {
        let r = try await send(base, "POST", "/console/session", headers: [("Content-Type", "application/json")], body: #"{"token":"\#(token)"}"#)
        #expect(r.status == 201, "\(r.body)")
        let cookie = r.response.header("set-cookie") ?? ""
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"))
        let secret = String(cookie.split(separator: ";")[0].dropFirst("almanac_session=".count))
        #expect(secret.hasPrefix("ses_") && r.json["csrf"]?.stringValue == ConsoleSession.csrf(for: secret))
        #expect(!r.body.contains(secret) && !r.body.contains(token))
        return (secret, r.json["csrf"]?.stringValue ?? "")
    }

    func session(_ s: (secret: String, csrf: String), csrf: String? = nil) -> [(String, String)] {
        [("Cookie", "almanac_session=\(s.secret)"), ("X-Almanac-CSRF", csrf ?? s.csrf)]
    }

    @Test func theConsoleIsServedWithItsSecurityHeaders() async throws {
        let (d, client, _, _, _) = try await api.deployment()
        let page = try await send(client.base, "GET", "/console")
        #expect(page.status == 200 && page.response.header("content-type")?.hasPrefix("text/html") == true)
        #expect(page.body.contains("/console/assets/app.js") && page.body.contains("/console/lib/dygraph.min.js"))
        #expect(page.response.header("content-security-policy")?.contains("script-src 'self'") == true)
        #expect(page.response.header("content-security-policy")?.contains("frame-ancestors 'none'") == true)
        #expect(page.response.header("x-content-type-options") == "nosniff")
        #expect(try await send(client.base, "GET", "/console/").status == 200)
        let script = try await send(client.base, "GET", "/console/assets/app.js")
        #expect(script.status == 200 && script.response.header("content-type")?.hasPrefix("text/javascript") == true)
        #expect(try await send(client.base, "GET", "/console/assets/forecast.js").body.contains("customBars"))
        let library = try await send(client.base, "GET", "/console/lib/dygraph.min.js")
        #expect(library.status == 200 && library.body.contains("Dygraph"), "install libjs-dygraphs: \(library.body.prefix(200))")
        for path in ["/console/assets/..%2FPackage.swift", "/console/assets/nothing.js", "/console/assets/.hidden.js", "/console/lib/jquery.js"] {
            #expect(try await send(client.base, "GET", path).status == 404, "\(path)")
        }
        await d.shutdown()
    }

    @Test func aSessionActsOnlyWithItsCSRFValueAndOnlyWhileItWorks() async throws {
        let (d, client, acme, acmeRead, globex) = try await api.deployment()
        let base = client.base
        let json = [("Content-Type", "application/json")]
        // Refusals at sign-in: not JSON, another origin, no or a bad token, a publish-only token.
        #expect(try await send(base, "POST", "/console/session", headers: [("Content-Type", "application/x-www-form-urlencoded")], body: "token=\(acme)").status == 415)
        #expect(try await send(base, "POST", "/console/session", headers: json + [("Origin", "https://evil.example")], body: #"{"token":"\#(acme)"}"#).status == 403)
        #expect(try await send(base, "POST", "/console/session", headers: json + [("Origin", "null")], body: #"{"token":"\#(acme)"}"#).status == 403)
        #expect(try await send(base, "POST", "/console/session", headers: json, body: #"{"token":""}"#).status == 400)
        #expect(try await send(base, "POST", "/console/session", headers: json, body: #"{"token":"alm_nope"}"#).status == 401)
        let publish = try await TenantDirectory.createToken(tenant: "acme", scope: .publish, expires: nil, in: d.db).token
        #expect(try await send(base, "POST", "/console/session", headers: json, body: #"{"token":"\#(publish)"}"#).status == 403)
        #expect(try await d.count("SELECT count(*) AS n FROM console_sessions WHERE ended_at IS NULL") == 0)

        let s = try await signIn(base, acme)
        // Only the digest of the secret is stored.
        #expect(try await d.count("SELECT count(*) AS n FROM console_sessions WHERE session_sha256 = $1 AND tenant = 'acme'", [TenantDirectory.digest(s.secret)]) == 1)
        #expect(try await d.count("SELECT count(*) AS n FROM console_sessions WHERE session_sha256 = $1", [s.secret]) == 0)
        let who = try await send(base, "GET", "/console/session", headers: [("Cookie", "almanac_session=\(s.secret)")])
        #expect(who.status == 200 && who.json["tenant"]?.stringValue == "acme" && who.json["scope"]?.stringValue == "admin")
        // The cookie alone, or with another session's value, does nothing.
        #expect(try await send(base, "GET", "/v1/datasets", headers: [("Cookie", "almanac_session=\(s.secret)")]).status == 403)
        #expect(try await send(base, "GET", "/v1/datasets", headers: session(s, csrf: ConsoleSession.csrf(for: s.secret + "x"))).status == 403)
        #expect(try await send(base, "POST", "/v1/datasets", headers: [("Cookie", "almanac_session=\(s.secret)")] + json,
                               body: #"{"name":"forged","horizon":3}"#).status == 403)
        // With it, the session acts as its token: read, and change (admin).
        #expect(try await send(base, "GET", "/v1/datasets", headers: session(s)).status == 200)
        #expect(try await send(base, "POST", "/v1/datasets", headers: session(s) + json, body: #"{"name":"sales","horizon":2}"#).status == 201)
        #expect(try await d.count("SELECT count(*) AS n FROM datasets WHERE tenant = 'acme' AND name = 'forged'") == 0)
        // A read token's session reads but does not change.
        let r = try await signIn(base, acmeRead)
        #expect(try await send(base, "GET", "/v1/datasets/sales", headers: session(r)).status == 200)
        #expect(try await send(base, "DELETE", "/v1/datasets/sales", headers: session(r)).status == 403)
        // Another tenant's session sees none of it.
        let g = try await signIn(base, globex)
        #expect(try await send(base, "GET", "/v1/datasets/sales", headers: session(g)).status == 404)
        // Sign-out ends the session at once; so does revoking its token.
        #expect(try await send(base, "DELETE", "/console/session", headers: [("Cookie", "almanac_session=\(g.secret)")]).status == 403)
        let out = try await send(base, "DELETE", "/console/session", headers: session(g))
        #expect(out.status == 204 && out.response.header("set-cookie")?.contains("Max-Age=0") == true)
        #expect(try await send(base, "GET", "/v1/datasets", headers: session(g)).status == 401)
        #expect(try await send(base, "GET", "/console/session", headers: session(g)).status == 401)
        let tokenID = try await d.db.query("SELECT token_id FROM console_sessions WHERE session_sha256 = $1", [TenantDirectory.digest(r.secret)])
        try await TenantDirectory.revoke(tokenID: try tokenID[0].decode("token_id"), in: d.db)
        #expect(try await send(base, "GET", "/v1/datasets", headers: session(r)).status == 401)
        #expect(try await send(base, "GET", "/v1/datasets", headers: session(s)).status == 200)
        await d.shutdown()
    }

    @Test func theConsolesReadsAreTheTenantsOwn() async throws {
        let (d, client, acme, _, globex) = try await api.deployment()
        try await d.db.exec("INSERT INTO datasets (tenant, name, horizon) VALUES ('acme', 'sales', 2)")
        try await api.storeForecast(d)
        let base = client.base
        func get(_ path: String, _ token: String) async throws -> Answer {
            try await send(base, "GET", path, headers: [("Authorization", "Bearer \(token)")])
        }
        // Items of the live forecast: searched, and paged with a cursor.
        let all = try await get("/v1/datasets/sales/items", acme)
        #expect(all.status == 200 && all.json["items"]?.arrayValue?.compactMap { $0["item_id"]?.stringValue } == ["A", "B", "C"])
        #expect(try await get("/v1/datasets/sales/items?search=b", acme).json["items"]?.arrayValue?.compactMap { $0["item_id"]?.stringValue } == ["B"])
        let first = try await get("/v1/datasets/sales/items?limit=2", acme)
        let cursor = first.json["next_cursor"]?.stringValue ?? ""
        #expect(first.json["items"]?.arrayValue?.count == 2 && !cursor.isEmpty)
        #expect(try await get("/v1/datasets/sales/items?limit=2&cursor=\(cursor)", acme).json["items"]?.arrayValue?.compactMap { $0["item_id"]?.stringValue } == ["C"])
        #expect(try await get("/v1/datasets/sales/items?search=" + String(repeating: "x", count: 201), acme).status == 400)
        // Backtests: the predictor with its (missing) window; the history needs data.
        let backtests = try await get("/v1/datasets/sales/backtests?item=A", acme)
        #expect(backtests.status == 200 && backtests.json["items"]?.arrayValue?.first?["predictor_id"]?.stringValue == "p1")
        #expect(backtests.json["items"]?.arrayValue?.first?["live"] == .bool(true))
        #expect(try await get("/v1/datasets/sales/backtests", acme).status == 400)
        #expect(try await get("/v1/datasets/sales/history?item=A", acme).status == 404)
        #expect(try await get("/v1/datasets/sales/history?item=A&limit=0", acme).status == 400)
        // globex reaches none of acme's dataset.
        for path in ["/v1/datasets/sales/items", "/v1/datasets/sales/history?item=A", "/v1/datasets/sales/backtests?item=A"] {
            #expect(try await get(path, globex).status == 404, "\(path)")
        }
        // Arrivals: acme's, with the chain; none for globex.
        let arrival = CloudEvent(id: "arr-1", source: "erp", type: "almanac.data.arrived", subject: "sales",
                                 json: ["dataset": "sales", "url": "file:///nowhere.csv"])
        let posted = try await send(base, "POST", "/v1/events", headers: [("Authorization", "Bearer \(acme)"), ("Content-Type", "application/cloudevents+json")],
                                    body: String(decoding: arrival.structuredJSON().serializedData(), as: UTF8.self))
        #expect(posted.status == 202)
        let arrivals = try await get("/v1/arrivals", acme)
        #expect(arrivals.status == 200 && arrivals.json["items"]?.arrayValue?.first?["event_id"]?.stringValue == "arr-1")
        #expect(arrivals.json["items"]?.arrayValue?.first?["steps"]?.arrayValue?.first?["type"]?.stringValue == "almanac.data.arrived")
        #expect(try await get("/v1/arrivals", globex).json["items"]?.arrayValue?.isEmpty == true)
        #expect(try await get("/v1/arrivals?cursor=bm9wZQ", acme).status == 400)
        // The functions' state answers (this deployment runs none).
        let functions = try await get("/v1/functions", acme)
        #expect(functions.status == 200 && functions.json["items"]?.arrayValue != nil)
        await d.shutdown()
    }
}
