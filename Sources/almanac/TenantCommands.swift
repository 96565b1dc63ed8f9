import AlmanacCore
import AlmanacFunctions
import AlmanacControlPlane
import AlmanacAPI
import ArgumentParser
import Foundation

/// `almanac tenants`: the installation's tenants (an installation command: database access).
struct Tenants: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create and list tenants.",
        discussion: "A tenant owns its datasets, files, forecasts, webhooks and events; its bearer tokens say who speaks for it.",
        subcommands: [Create.self, List.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tenant; prints its first admin token (shown once).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The tenant's name: 1–63 letters, digits, '-', '_' or '.', not starting with '.'.") var name: String

        func run() async throws {
            let made: (token: String, id: String)
            do { made = try await client.withDatabase { try await TenantDirectory.create(tenant: name, in: $0) } } catch let e as InvalidName {
                throw ValidationError(e.message)
            } catch let e as TenantError {
                throw ValidationError(e.message)
            }
            print("tenant  \(name)")
            print("token   \(made.token)")
            print("id      \(made.id) (scope admin)")
            print("(the token is shown once; only its digest is kept. Send it as Authorization: Bearer <token>)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tenants with their number of working tokens.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let rows = try await client.withDatabase { try await TenantDirectory.tenants(in: $0) }
            print(table(["tenant", "tokens", "created"], rows.map { [$0.name, String($0.activeTokens), RFC3339.format($0.createdAt)] }))
        }
    }
}

/// `almanac tokens`: a tenant's bearer tokens (an installation command: database access).
struct Tokens: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list and revoke tenants' bearer tokens.",
        discussion: "Scopes: publish (POST /events), read (reading the tenant's things), admin (everything). A revoked or expired token is refused from the next request on.",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a token for a tenant; prints it (shown once) and its id.")
        @OptionGroup var client: ClientOptions
        @Option(help: "The tenant.") var tenant: String
        @Option(help: "publish, read or admin.") var scope: String
        @Option(help: "When it stops working: a duration from now (90m, 12h, 30d) or an RFC 3339 time.") var expires: String?

        func run() async throws {
            guard let scope = TokenScope(rawValue: scope) else {
                throw ValidationError("--scope must be publish, read or admin, got \(EventLimits.quoted(scope))")
            }
            let until = try expires.map(Self.expiry)
            let made: (token: String, id: String)
            do {
                made = try await client.withDatabase { try await TenantDirectory.createToken(tenant: tenant, scope: scope, expires: until, in: $0) }
            } catch let e as TenantError {
                throw ValidationError(e.message)
            }
            print("token   \(made.token)")
            print("id      \(made.id) (tenant \(tenant), scope \(scope.rawValue)\(until.map { ", expires " + RFC3339.format($0) } ?? ""))")
            print("(the token is shown once; only its digest is kept)")
        }

        /// A time from `--expires`: a duration from now or an RFC 3339 time.
        static func expiry(_ text: String) throws -> Date {
            if let t = RFC3339.parse(text) { return t }
            guard let seconds = FunctionManifest.parseDuration(.string(text)), seconds.isFinite, seconds > 0, seconds <= 3650 * 86_400 else {
                throw ValidationError("--expires must be a duration (90m, 12h, 30d; at most ten years) or an RFC 3339 time, got \(EventLimits.quoted(text))")
            }
            return Date().addingTimeInterval(seconds)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (never the tokens themselves).")
        @OptionGroup var client: ClientOptions
        @Option(help: "Only this tenant's.") var tenant: String?

        func run() async throws {
            let rows = try await client.withDatabase { try await TenantDirectory.tokens(tenant: tenant, in: $0) }
            let now = Date()
            print(table(["id", "tenant", "scope", "created", "expires", "state"], rows.map { t in
                let state = t.revokedAt.map { "revoked " + RFC3339.format($0) } ?? (t.expiresAt.map { $0 <= now } == true ? "expired" : "active")
                return [t.id, t.tenant, t.scope.rawValue, RFC3339.format(t.createdAt), t.expiresAt.map(RFC3339.format) ?? "never", state]
            }))
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token: refused from the next request on.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The token's id (tok_…, from `almanac tokens list`).") var id: String

        func run() async throws {
            let revoked = try await client.withDatabase { try await TenantDirectory.revoke(tokenID: id, in: $0) }
            guard revoked else { throw ValidationError("no working token \(EventLimits.quoted(id)); see `almanac tokens list`") }
            print("token \(id) revoked")
        }
    }
}
