import AlmanacCore
import AlmanacHTTP
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Testing

/// Tenants and their tokens, made with the `almanac` command and used over real HTTP.
@Suite(.serialized) struct CredentialTests {
    /// The value after `label` on a line of the command's output (`token   alm_…`).
    func field(_ label: String, in output: String) -> String {
        output.split(separator: "\n").first { $0.hasPrefix(label + " ") }?
            .dropFirst(label.count).trimmingCharacters(in: .whitespaces).split(separator: " ").first.map(String.init) ?? ""
    }

    @Test func tenantsAndTokensAreMadeListedScopedExpiredAndRevokedAtOnce() async throws {
        let d = try await TestDeployment(functions: [TestFunction(name: "cred", subscribe: "test.cred")])
        try await d.startControlPlane()
        let base = try await d.ingressURL()
        let client = HTTPClient()
        var n = 0
        func post(_ token: String) async throws -> (status: Int, body: String) {
            n += 1
            let e = CloudEvent(id: "c-\(n)", source: "erp", type: "test.cred", json: ["n": .number(Double(n))])
            let r = try await client.send(HTTPClientRequest(method: "POST", url: "\(base)/events",
                                                            headers: [("Authorization", "Bearer \(token)"), ("Content-Type", cloudEventsJSONType)],
                                                            body: e.structuredJSON().serializedData()))
            return (r.status, String(decoding: r.body, as: UTF8.self))
        }

        let made = try await d.almanac(["tenants", "create", "initech"])
        #expect(made.status == 0, "\(made.output)")
        let admin = field("token", in: made.output), adminID = field("id", in: made.output)
        #expect(admin.hasPrefix("alm_") && admin.count > 40 && adminID.hasPrefix("tok_"))
        #expect(try await d.count("SELECT count(*) AS n FROM tenant_tokens WHERE token_sha256 = encode(sha256($1::bytea), 'hex')",
                                  [Data(admin.utf8)]) == 1, "only the digest is stored")
        let again = try await d.almanac(["tenants", "create", "initech"])
        #expect(again.status != 0 && again.output.contains("tenant initech exists already"), "\(again.output)")
        let badName = try await d.almanac(["tenants", "create", "../etc"])
        #expect(badName.status != 0 && badName.output.contains("tenant name \"../etc\" is invalid"), "\(badName.output)")
        #expect(try await d.almanac(["tenants", "create", "globex"]).status == 0)

        #expect(try await post(admin).status == 202)
        // Scopes: a read token may not publish; a publish token may.
        let read = try await d.almanac(["tokens", "create", "--tenant", "initech", "--scope", "read"])
        let readToken = field("token", in: read.output)
        let refused = try await post(readToken)
        #expect(refused.status == 403 && refused.body.contains("has scope read; this needs publish or admin"), "\(refused.body)")
        let publish = try await d.almanac(["tokens", "create", "--tenant", "initech", "--scope", "publish", "--expires", "30d"])
        #expect(publish.output.contains("expires "), "\(publish.output)")
        let publishToken = field("token", in: publish.output), publishID = field("id", in: publish.output)
        #expect(try await post(publishToken).status == 202)
        // Wrong inputs say what is wrong.
        let noTenant = try await d.almanac(["tokens", "create", "--tenant", "nobody", "--scope", "read"])
        #expect(noTenant.status != 0 && noTenant.output.contains("no tenant \"nobody\""), "\(noTenant.output)")
        let badScope = try await d.almanac(["tokens", "create", "--tenant", "initech", "--scope", "root"])
        #expect(badScope.status != 0 && badScope.output.contains("--scope must be publish, read or admin"), "\(badScope.output)")
        let past = try await d.almanac(["tokens", "create", "--tenant", "initech", "--scope", "read", "--expires", "2020-01-01T00:00:00Z"])
        #expect(past.status != 0 && past.output.contains("--expires must be in the future"), "\(past.output)")

        // An expired token is refused from the moment it expires.
        try await d.db.exec("UPDATE tenant_tokens SET expires_at = now() - interval '1 second' WHERE id = $1", [publishID])
        #expect(try await post(publishToken).status == 401)
        // A revoked token is refused on the very next request.
        let revoke = try await d.almanac(["tokens", "revoke", adminID])
        #expect(revoke.status == 0 && revoke.output.contains("token \(adminID) revoked"), "\(revoke.output)")
        let afterRevoke = try await post(admin)
        #expect(afterRevoke.status == 401 && afterRevoke.body.contains("unknown, revoked or expired token"))
        #expect(try await d.almanac(["tokens", "revoke", adminID]).status != 0, "revoking twice says there is no working token")

        let listed = try await d.almanac(["tokens", "list", "--tenant", "initech"])
        #expect(listed.output.contains(adminID) && listed.output.contains("revoked ") && listed.output.contains("expired"), "\(listed.output)")
        #expect(!listed.output.contains("alm_"), "a listing never shows a token")
        let tenants = try await d.almanac(["tenants", "list"])
        #expect(tenants.output.split(separator: "\n").contains { $0.hasPrefix("initech") && $0.split(separator: " ", omittingEmptySubsequences: true)[1] == "1" },
                "initech has one working token left (read): \(tenants.output)")

        // Metrics name tenants only to an admin token, and only its own tenant.
        let globexAdmin = field("token", in: try await d.almanac(["tokens", "create", "--tenant", "globex", "--scope", "admin"]).output)
        #expect(try await post(globexAdmin).status == 202)
        let initechAdmin = field("token", in: try await d.almanac(["tokens", "create", "--tenant", "initech", "--scope", "admin"]).output)
        func metrics(_ token: String?) async throws -> (Int, String) {
            let r = try await client.send(HTTPClientRequest(method: "GET", url: "\(base)/metrics",
                                                            headers: token.map { [("Authorization", "Bearer \($0)")] } ?? []))
            return (r.status, String(decoding: r.body, as: UTF8.self))
        }
        let anonymous = try await metrics(nil)
        #expect(anonymous.0 == 200 && anonymous.1.contains("almanac_ingress_events_total") && !anonymous.1.contains("tenant=\""))
        let own = try await metrics(initechAdmin)
        #expect(own.1.contains("almanac_ingress_tenant_events_total{tenant=\"initech\"} 2") && !own.1.contains("globex"), "\(own.1)")
        #expect(try await metrics(readToken).0 == 403)
        #expect(try await metrics("alm_nope").0 == 401)
        await d.shutdown()
    }
}
