import AlmanacPipeline
import AlmanacControlPlane
import AlmanacCore
import AlmanacFunctions
import Foundation
import HTTPTypes
import Hummingbird

/// The web console at `/console`: plain HTML, CSS and JavaScript modules from the project's
/// `console/` folder (no build step), the charting library from Debian's `libjs-dygraphs`,
/// and the sign-in that exchanges a tenant token for a session cookie. Everything the pages
/// show comes from the `/v1` API, called with that cookie and its CSRF header.
public struct ConsoleRoutes: IngressRoutes {
    /// The console's own files, by name, read once at start.
    let files: [String: ConsoleFile]
    /// The charting library's files, by name.
    let libraries: [String: ConsoleFile]
    /// Where the files were looked for (for the error when they are missing).
    let folder: String
    /// Whether cookies are marked `Secure` (`ALMANAC_CONSOLE_SECURE_COOKIE=1`, for a server behind HTTPS).
    let secureCookie: Bool

    /// The charting library's folder: `ALMANAC_CONSOLE_LIBS`, or where Debian's `libjs-dygraphs` puts it.
    public static let defaultLibraries = ProcessInfo.processInfo.environment["ALMANAC_CONSOLE_LIBS"] ?? "/usr/share/javascript/dygraphs"
    /// The library files served, under `/console/lib/`.
    static let libraryNames = ["dygraph.min.js", "dygraph.min.css"]
    /// The security headers of every console answer: scripts and requests only from this
    /// server, no framing, no sniffing, no referrer. Styles may also be inline because
    /// dygraphs writes `style` attributes into its legend and range selector; scripts may not
    /// (no inline script, no `eval`), and the pages never insert HTML from data.
    static let securityHeaders: [(HTTPField.Name, String)] = [
        (HTTPField.Name("Content-Security-Policy")!,
         "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
            + "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
        (HTTPField.Name("X-Content-Type-Options")!, "nosniff"),
        (HTTPField.Name("Referrer-Policy")!, "no-referrer"),
        (HTTPField.Name("Cache-Control")!, "no-cache"),
    ]

    /// Reads the console's files from `folder` (the project's `console/`) and the charting
    /// library from `libraries`.
    public init(folder: String, libraries: String = ConsoleRoutes.defaultLibraries,
                secureCookie: Bool = ProcessInfo.processInfo.environment["ALMANAC_CONSOLE_SECURE_COOKIE"] == "1") {
        self.folder = folder
        self.secureCookie = secureCookie
        var files: [String: ConsoleFile] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
            if let f = ConsoleFile(path: folder + "/" + name) { files[name] = f }
        }
        self.files = files
        var libs: [String: ConsoleFile] = [:]
        for name in Self.libraryNames {
            if let f = ConsoleFile(path: libraries + "/" + name) { libs[name] = f }
        }
        self.libraries = libs
    }

    /// Adds the routes.
    public func add(to router: Router<BasicRequestContext>, ingress: EventIngress) {
        // One route answers both `/console` and `/console/` (the router treats them as one path);
        // the page names its files by absolute paths.
        router.get("/console") { _, _ in serve(files["index.html"], "index.html") }
        router.get("/console/assets/:file") { _, context in
            let name = context.parameters.get("file") ?? ""
            return serve(files[name], name)
        }
        router.get("/console/lib/:file") { _, context in
            let name = context.parameters.get("file") ?? ""
            guard let f = libraries[name] else {
                return Self.secured(EventIngress.Problem(.notFound, Self.libraryNames.contains(name)
                    ? "the charting library is not installed: install Debian's libjs-dygraphs or set ALMANAC_CONSOLE_LIBS"
                    : "no console library \(EventLimits.quoted(name))").response)
            }
            return Self.secured(f.response)
        }
        router.post("/console/session") { request, _ in await signIn(request, ingress: ingress) }
        router.get("/console/session") { request, _ in await session(request, ingress: ingress) }
        router.delete("/console/session") { request, _ in await signOut(request, ingress: ingress) }
    }

    func serve(_ file: ConsoleFile?, _ name: String) -> Response {
        guard let file else {
            let missing = files.isEmpty ? "the console's files were not found in \(folder)" : "no console file \(EventLimits.quoted(name))"
            return Self.secured(EventIngress.Problem(files.isEmpty ? .serviceUnavailable : .notFound, missing).response)
        }
        return Self.secured(file.response)
    }

    static func secured(_ response: Response) -> Response {
        var r = response
        for (name, value) in securityHeaders { r.headers[name] = value }
        return r
    }

    static func headerPairs(_ request: Request) -> [(String, String)] {
        request.headers.map { ($0.name.canonicalName, $0.value) }
    }

    /// `POST /console/session` with `{"token": "alm_…"}` (JSON only, from this origin): the
    /// token is checked and exchanged for a session cookie; the answer names the tenant,
    /// the scope and the CSRF value. A publish-only token cannot sign in (it reads nothing).
    func signIn(_ request: Request, ingress: EventIngress) async -> Response {
        let headers = Self.headerPairs(request)
        // A browser names the page's origin; it must be this server (HTTP/1's Host is the request's authority here).
        if let origin = headers.first(where: { $0.0 == "origin" })?.1,
           let host = request.head.authority ?? headers.first(where: { $0.0 == "host" })?.1,
           URL(string: origin)?.host.map({ h in host == h || host.hasPrefix(h + ":") }) != true {
            return Self.secured(EventIngress.Problem(.forbidden, "sign-in from another origin (\(EventLimits.quoted(origin))) is refused").response)
        }
        let type = (request.headers[.contentType] ?? "").split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard type == "application/json" else {
            return Self.secured(EventIngress.Problem(.unsupportedMediaType, "send {\"token\": \"alm_…\"} as application/json").response)
        }
        let token: String
        do {
            guard let t = try await ForecastAPI.jsonBody(request)["token"]?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines),
                  !t.isEmpty, t.utf8.count <= 200 else {
                return Self.secured(EventIngress.Problem(.badRequest, "token is required: the tenant token (alm_…) to sign in with").response)
            }
            token = t
        } catch let p as EventIngress.Problem {
            return Self.secured(p.response)
        } catch {
            return Self.secured(EventIngress.Problem(.badRequest, "\(error)").response)
        }
        do {
            guard let started = try await ingress.tenants.startSession(token: token) else {
                return Self.secured(EventIngress.Problem(.unauthorized, "unknown, revoked or expired token").response)
            }
            guard started.credential.scope != .publish else {
                try await ingress.tenants.endSession(secret: started.secret)
                return Self.secured(EventIngress.Problem(.forbidden, "token \(started.credential.tokenID) may only publish events; sign in with a read or admin token").response)
            }
            var response = ForecastAPI.json(.created, Self.sessionJSON(started.credential, secret: started.secret, expires: started.expires))
            let maxAge = max(1, Int(started.expires.timeIntervalSinceNow.rounded(.down)))
            response.headers[.setCookie] = ConsoleSession.setCookie(started.secret, maxAge: maxAge, secure: secureCookie)
            return Self.secured(response)
        } catch {
            return Self.secured(EventIngress.Problem(.serviceUnavailable, "tenant directory unavailable; retry later").response)
        }
    }

    /// `GET /console/session`: who the cookie speaks for and its CSRF value (401 without a working session).
    func session(_ request: Request, ingress: EventIngress) async -> Response {
        guard let secret = ConsoleSession.secret(in: Self.headerPairs(request)) else {
            return Self.secured(EventIngress.Problem(.unauthorized, "not signed in").response)
        }
        do {
            guard let c = try await ingress.tenants.credential(forSession: secret) else {
                var r = EventIngress.Problem(.unauthorized, "the console session ended or expired, or its token was revoked; sign in again").response
                r.headers[.setCookie] = ConsoleSession.setCookie("", maxAge: 0, secure: secureCookie)
                return Self.secured(r)
            }
            return Self.secured(ForecastAPI.json(.ok, Self.sessionJSON(c, secret: secret, expires: nil)))
        } catch {
            return Self.secured(EventIngress.Problem(.serviceUnavailable, "tenant directory unavailable; retry later").response)
        }
    }

    /// `DELETE /console/session` (with the CSRF header): ends the session and clears the cookie.
    func signOut(_ request: Request, ingress: EventIngress) async -> Response {
        let headers = Self.headerPairs(request)
        guard let secret = ConsoleSession.secret(in: headers) else {
            return Self.secured(EventIngress.Problem(.unauthorized, "not signed in").response)
        }
        guard ConsoleSession.csrfMatches(headers, secret: secret) else {
            return Self.secured(EventIngress.Problem(.forbidden, "sign-out must carry the session's X-Almanac-CSRF header").response)
        }
        do { try await ingress.tenants.endSession(secret: secret) } catch {
            return Self.secured(EventIngress.Problem(.serviceUnavailable, "tenant directory unavailable; retry later").response)
        }
        var r = Response(status: .noContent)
        r.headers[.setCookie] = ConsoleSession.setCookie("", maxAge: 0, secure: secureCookie)
        return Self.secured(r)
    }

    static func sessionJSON(_ c: Credential, secret: String, expires: Date?) -> JSONValue {
        .object(["tenant": .string(c.tenant), "scope": .string(c.scope.rawValue), "token_id": .string(c.tokenID),
                 "csrf": .string(ConsoleSession.csrf(for: secret)), "expires_at": expires.map { .string(RFC3339.format($0)) } ?? .null])
    }
}

/// One file the console serves, held in memory with its media type.
struct ConsoleFile: Sendable {
    let body: ByteBuffer
    let contentType: String

    /// The file at `path`, when it is a regular file of a type the console serves (html, css,
    /// js, svg, png) with a plain name, and at most 4 MiB.
    init?(path: String) {
        let name = (path as NSString).lastPathComponent
        guard name.range(of: #"^[A-Za-z0-9][A-Za-z0-9._-]*$"#, options: .regularExpression) != nil,
              let type = Self.types[(name as NSString).pathExtension.lowercased()],
              let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              attributes[.type] as? FileAttributeType == .typeRegular,
              (attributes[.size] as? Int ?? .max) <= 4 << 20,
              let data = FileManager.default.contents(atPath: path) else { return nil }
        body = ByteBuffer(bytes: data)
        contentType = type
    }

    static let types = ["html": "text/html; charset=utf-8", "css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8",
                        "svg": "image/svg+xml", "png": "image/png"]

    var response: Response { Response(status: .ok, headers: [.contentType: contentType], body: .init(byteBuffer: body)) }
}
