import AlmanacCore
import AlmanacHTTP
import Foundation

/// Fetches `http(s)://` data files for ingest with libcurl, streamed to a scratch file (never
/// held in memory), so that the file can then be staged like a dropped one.
///
/// Hosts that resolve to loopback or private addresses are refused unless `allowPrivate`
/// (`ALMANAC_INGEST_ALLOW_PRIVATE=1`); the fetch connects only to the addresses checked
/// (no second DNS lookup), and redirects are not followed, so a public URL cannot bounce
/// the fetch into the internal network.
public struct DataFetcher: Sendable {
    /// Whether loopback and private hosts may be fetched.
    public var allowPrivate: Bool
    /// The largest file accepted, in bytes.
    public var maxBytes: Int
    /// Where downloads are kept while they are ingested.
    public var scratch: String
    let client = HTTPClient(maxIdleConnections: 2)

    /// Makes a fetcher from the environment: `ALMANAC_INGEST_ALLOW_PRIVATE`, `ALMANAC_INGEST_MAX_BYTES` (default 4 GiB).
    public init(environment env: [String: String] = ProcessInfo.processInfo.environment) {
        allowPrivate = env["ALMANAC_INGEST_ALLOW_PRIVATE"] == "1"
        maxBytes = env["ALMANAC_INGEST_MAX_BYTES"].flatMap(Int.init) ?? 4 << 30
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("almanac-fetch-\(getuid())").path
    }

    /// Downloads the URL.
    /// - Parameter maxBytes: a tighter bound than the fetcher's (the dataset's), if any.
    /// - Returns: the local file (named like the URL's last path component, so `.gz` stays).
    /// - Throws: `PipelineError` when the URL is refused or answered with a 4xx (bad input:
    ///   rejected with a report); `HTTPClientError` or `FetchUnavailable` for connection errors,
    ///   timeouts and 5xx (worth retrying).
    public func fetch(_ location: String, id: String, maxBytes limit: Int? = nil) async throws -> URL {
        let pins = try Webhooks.checkURL(location, allowPrivate: allowPrivate)
        let safe = location.split(separator: "?").first.map(String.init) ?? location
        return try await download(location, shown: safe, pins: pins, id: id, maxBytes: limit, headers: [], sign: nil,
                                  refused: "check the URL and that it is readable without credentials")
    }

    /// Downloads an object from an S3-compatible store, signed (AWS Signature Version 4) with
    /// the rule's credentials, with the same limits and address checks as an http(s) fetch
    /// (the endpoint must not be private unless `allowPrivate`).
    /// - Throws: as `fetch`; a 403 (a wrong key or signature) or 404 (no such object) is a
    ///   `PipelineError` naming the object and the store's reason.
    public func fetch(_ object: S3Object, from source: S3Source, credentials: S3Credentials, id: String, maxBytes limit: Int? = nil)
        async throws -> URL {
        let url = object.url(at: source)
        let pins = try Webhooks.checkURL(url, allowPrivate: allowPrivate)
        var headers = [("x-amz-content-sha256", "UNSIGNED-PAYLOAD")]
        if let token = credentials.sessionToken { headers.append(("x-amz-security-token", token)) }
        return try await download(url, shown: object.location, pins: pins, id: id, maxBytes: limit, headers: headers,
                                  sign: ("aws:amz:\(source.region):s3", "\(credentials.accessKeyID):\(credentials.secretAccessKey)"),
                                  refused: "check the object's key and the credentials \(EventLimits.quoted(source.credentials)) of source \(source.id)")
    }

    /// Streams a GET into a scratch file, bounded by the fetcher's limit (or a tighter one).
    private func download(_ url: String, shown: String, pins: [String], id: String, maxBytes limit: Int?, headers: [(String, String)],
                          sign: (scope: String, credentials: String)?, refused: String) async throws -> URL {
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let name = URL(string: url)?.lastPathComponent ?? "data"
        let file = URL(fileURLWithPath: scratch).appendingPathComponent(FNV1a.hex(id) + "-" + (name.isEmpty || name == "/" ? "data" : name))
        let bound = min(maxBytes, limit ?? Int.max)
        let response: HTTPClientResponse
        do {
            response = try await client.send(HTTPClientRequest(method: "GET", url: url, headers: headers, timeout: 600, connectTimeout: 15,
                                                               bodyFile: file.path, maxBodyBytes: bound, resolve: pins, awsSigV4: sign))
        } catch let e as HTTPClientError where e.code == .tooLarge {
            try? FileManager.default.removeItem(at: file)
            throw PipelineError("\(shown) is larger than the limit of \(bound) bytes (the dataset's max_file_bytes, or ALMANAC_INGEST_MAX_BYTES)")
        }
        guard (200..<300).contains(response.status) else {
            // An error body (S3's XML says why) is small: read its code and message, then drop it.
            let detail = (try? String(contentsOf: file, encoding: .utf8)).map(Self.storeError) ?? ""
            try? FileManager.default.removeItem(at: file)
            if response.status >= 500 || response.status == 429 || response.status == 408 {
                throw FetchUnavailable(message: "GET \(shown) answered \(response.status)\(detail); will retry")
            }
            throw PipelineError("GET \(shown) answered \(response.status)\(detail); \(refused)")
        }
        return file
    }

    /// `" (Code: Message)"` from an S3 error document, or "".
    static func storeError(_ body: String) -> String {
        func element(_ name: String) -> String? {
            guard let open = body.range(of: "<\(name)>"), let close = body.range(of: "</\(name)>", range: open.upperBound..<body.endIndex) else { return nil }
            return String(body[open.upperBound..<close.lowerBound]).replacingOccurrences(of: "<![CDATA[", with: "")
                .replacingOccurrences(of: "]]>", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let code = element("Code") else { return "" }
        let message = element("Message").map { ": " + String($0.prefix(200)) } ?? ""
        return " (\(String(code.prefix(100)))\(message))"
    }
}

/// A fetch that failed for a reason that may pass (5xx, 429, 408).
public struct FetchUnavailable: Error, CustomStringConvertible, Sendable {
    /// What happened.
    public var message: String
    /// The message.
    public var description: String { message }
}
