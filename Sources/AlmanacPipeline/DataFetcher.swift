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
    /// - Returns: the local file (named like the URL's last path component, so `.gz` stays).
    /// - Throws: `PipelineError` when the URL is refused or answered with a 4xx (bad input:
    ///   rejected with a report); `HTTPClientError` or `FetchUnavailable` for connection errors,
    ///   timeouts and 5xx (worth retrying).
    public func fetch(_ location: String, id: String) async throws -> URL {
        let pins = try Webhooks.checkURL(location, allowPrivate: allowPrivate)
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let name = URL(string: location)?.lastPathComponent ?? "data"
        let file = URL(fileURLWithPath: scratch).appendingPathComponent(FNV1a.hex(id) + "-" + (name.isEmpty || name == "/" ? "data" : name))
        let response: HTTPClientResponse
        do {
            response = try await client.send(HTTPClientRequest(method: "GET", url: location, timeout: 600, connectTimeout: 15,
                                                               bodyFile: file.path, maxBodyBytes: maxBytes, resolve: pins))
        } catch let e as HTTPClientError where e.code == .tooLarge {
            try? FileManager.default.removeItem(at: file)
            throw PipelineError("\(e.url) is larger than the ingest limit of \(maxBytes) bytes (ALMANAC_INGEST_MAX_BYTES)")
        }
        guard (200..<300).contains(response.status) else {
            try? FileManager.default.removeItem(at: file)
            let safe = location.split(separator: "?").first.map(String.init) ?? location
            if response.status >= 500 || response.status == 429 || response.status == 408 {
                throw FetchUnavailable(message: "GET \(safe) answered \(response.status); will retry")
            }
            throw PipelineError("GET \(safe) answered \(response.status); check the URL and that it is readable without credentials")
        }
        return file
    }
}

/// A fetch that failed for a reason that may pass (5xx, 429, 408).
public struct FetchUnavailable: Error, CustomStringConvertible, Sendable {
    /// What happened.
    public var message: String
    /// The message.
    public var description: String { message }
}
