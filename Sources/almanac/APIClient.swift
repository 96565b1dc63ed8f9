import AlmanacCore
import AlmanacHTTP
import ArgumentParser
import Foundation

/// The `/v1` API as the tenant commands speak it: the installation at `ALMANAC_HTTP`, as the
/// tenant whose bearer token is `ALMANAC_TOKEN` (both from the environment, or from the
/// `endpoints.env` that `almanac up` writes), so the same commands work against a remote
/// installation as `aws` or `kubectl` do. The token, not a flag, decides the tenant.
struct APIClient {
    /// The installation's base URL, without a trailing slash.
    let base: String
    let token: String
    let http = HTTPClient(maxIdleConnections: 4)
    /// How long one request may take (`ALMANAC_HTTP_TIMEOUT` seconds, default 300: a page of
    /// a long forecast from a busy server can take a while); uploads of large files an hour.
    let timeout: Double
    static let uploadTimeout = 3600.0
    /// The largest answer read.
    static let maxAnswer = 256 << 20

    /// The client for the environment's `ALMANAC_HTTP` and `ALMANAC_TOKEN`.
    /// - Throws: `ValidationError` naming what is missing or malformed.
    init(environment: [String: String], state: String) throws {
        guard let url = environment["ALMANAC_HTTP"], !url.isEmpty else {
            throw ValidationError("ALMANAC_HTTP is not set and \(state)/endpoints.env was not found: export ALMANAC_HTTP (the installation's URL, "
                                      + "e.g. https://almanac.example.com) and ALMANAC_TOKEN, or run `almanac up` here first.")
        }
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw ValidationError("ALMANAC_HTTP must be an http(s) URL, got \(EventLimits.quoted(url))")
        }
        guard let token = environment["ALMANAC_TOKEN"], !token.isEmpty else {
            throw ValidationError("ALMANAC_TOKEN is not set: export a bearer token of your tenant (`almanac tokens create` makes one).")
        }
        base = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.token = token
        let limit = environment["ALMANAC_HTTP_TIMEOUT"].map { Double($0) }
        guard let seconds = limit ?? 300, seconds > 0, seconds <= 86_400 else {
            throw ValidationError("ALMANAC_HTTP_TIMEOUT must be a number of seconds from 1 to 86400, got \(EventLimits.quoted(environment["ALMANAC_HTTP_TIMEOUT"] ?? ""))")
        }
        timeout = seconds
    }

    /// An answer: its status, headers and body.
    typealias Answer = HTTPClientResponse

    /// Sends a request to `path` (which starts with `/v1/`); a non-2xx answer throws its problem.
    /// - Parameters:
    ///   - json: a JSON body.
    ///   - body: a body of `contentType`.
    ///   - file: a file streamed as the body, with `contentType`.
    ///   - accept: the `Accept` header.
    @discardableResult
    func send(_ method: String, _ path: String, json: JSONValue? = nil, body: Data? = nil, file: String? = nil, contentType: String? = nil,
              accept: String = "application/json") async throws -> Answer {
        var headers = [("Authorization", "Bearer \(token)"), ("Accept", accept)]
        if json != nil { headers.append(("Content-Type", "application/json")) }
        if let contentType { headers.append(("Content-Type", contentType)) }
        let request = HTTPClientRequest(method: method, url: base + path, headers: headers, body: json.map { Data($0.serialized().utf8) } ?? body,
                                        timeout: file == nil ? timeout : max(timeout, Self.uploadTimeout), maxBodyBytes: Self.maxAnswer, uploadFile: file)
        let answer: Answer
        do { answer = try await http.send(request) } catch let e as HTTPClientError {
            let hint = e.code == .timeout ? " after \(Int(timeout)) s (ALMANAC_HTTP_TIMEOUT)" : ""
            throw APIFailure(message: "cannot reach \(base) (ALMANAC_HTTP): \(e.message)\(hint)")
        }
        guard (200..<300).contains(answer.status) else { throw APIFailure(answer, method: method, path: path) }
        return answer
    }

    /// Sends a request and reads its JSON answer.
    func json(_ method: String, _ path: String, json body: JSONValue? = nil) async throws -> JSONValue {
        let answer = try await send(method, path, json: body)
        if answer.body.isEmpty { return .null }
        do { return try JSONValue(parsing: answer.body) } catch {
            throw APIFailure(message: "\(method) \(path) answered \(answer.status) with a body that is not JSON: \(error)")
        }
    }

    /// Every item of a paged list (`items` and `next_cursor`), following the cursors.
    func all(_ path: String, limit: Int? = nil) async throws -> [JSONValue] {
        var items: [JSONValue] = []
        var cursor: String?
        repeat {
            var query: [(String, String)] = []
            if let limit { query.append(("limit", String(min(limit - items.count, 1000)))) }
            if let cursor { query.append(("cursor", cursor)) }
            let page = try await json("GET", path + Self.query(query, joining: path.contains("?") ? "&" : "?"))
            items += page["items"]?.arrayValue ?? []
            cursor = page["next_cursor"]?.stringValue
        } while cursor != nil && items.count < (limit ?? Int.max)
        return items
    }

    /// A path segment or query value, percent-encoded: everything but ASCII letters, digits
    /// and `-._~` (Foundation's `.alphanumerics` would let non-ASCII letters through).
    static func segment(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
    }

    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// `?a=b&c=d` (or "" when empty), each value percent-encoded.
    static func query(_ pairs: [(String, String)], joining first: String = "?") -> String {
        pairs.isEmpty ? "" : first + pairs.map { "\($0.0)=\(segment($0.1))" }.joined(separator: "&")
    }
}

/// A request the API refused or could not answer: the problem document's status and
/// detail, as the command prints it.
struct APIFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }

    init(message: String) { self.message = message }

    /// The failure an answer's problem document describes.
    init(_ answer: HTTPClientResponse, method: String, path: String) {
        let problem = try? JSONValue(parsing: answer.body)
        let detail = problem?["detail"]?.stringValue ?? String(decoding: answer.body.prefix(500), as: UTF8.self)
        var text = "\(answer.status) \(problem?["title"]?.stringValue ?? "") from \(method) \(path): \(detail)"
        if answer.status == 401 { text += " (check ALMANAC_TOKEN)" }
        if let wait = answer.header("retry-after") { text += " (retry after \(wait) s)" }
        message = text
    }
}

extension ClientOptions {
    /// The `/v1` client for this installation and tenant.
    func api() throws -> APIClient { try APIClient(environment: environment, state: state) }
}

extension JSONValue {
    /// A member as text for a table cell: strings bare, null as "", other values as JSON.
    func cell(_ key: String) -> String {
        switch self[key] {
        case nil, .null?: return ""
        case .string(let s)?: return s
        case .number(let n)? where n.rounded() == n && abs(n) < 1e15: return String(Int64(n))
        case let v?: return v.serialized()
        }
    }
}
