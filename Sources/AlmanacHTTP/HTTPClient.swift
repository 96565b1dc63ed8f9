import CCurl
import Foundation

/// An HTTP request.
public struct HTTPClientRequest: Sendable {
    /// `GET`, `POST`, …
    public var method: String
    /// The absolute URL.
    public var url: String
    /// Header lines in order.
    public var headers: [(String, String)]
    /// The body, for POST and PUT.
    public var body: Data?
    /// The whole request's time limit, in seconds.
    public var timeout: Double
    /// The connect phase's time limit, in seconds.
    public var connectTimeout: Double
    /// Whether to follow redirects (off by default: a webhook must not be bounced elsewhere).
    public var followRedirects: Bool
    /// When set, the response body is streamed into this file instead of memory (downloads).
    public var bodyFile: String?
    /// When set, the request body is streamed from this file (uploads; `body` is ignored).
    public var uploadFile: String?
    /// When set, the request is signed with AWS Signature Version 4 by libcurl: the provider
    /// and scope (`aws:amz:REGION:s3`) and the key pair (`ACCESS_KEY_ID:SECRET_ACCESS_KEY`).
    /// The secret never appears in a URL, a log or an error.
    public var awsSigV4: (scope: String, credentials: String)?
    /// The largest body accepted; a longer one fails the request (`HTTPClientError.Code.tooLarge`),
    /// or, with `truncateBody`, is cut there and the transfer stopped.
    public var maxBodyBytes: Int?
    /// Whether a body over `maxBodyBytes` is cut (the response still returned, `truncated`
    /// set) rather than failing the request: for answers only glanced at, like a webhook
    /// receiver's.
    public var truncateBody: Bool
    /// Addresses to connect to instead of resolving the host again, as libcurl's
    /// `CURLOPT_RESOLVE` entries (`host:port:address[,address…]`): the addresses a policy
    /// check approved, so a second DNS answer cannot send the request elsewhere.
    public var resolve: [String]

    /// Makes a request.
    public init(method: String, url: String, headers: [(String, String)] = [], body: Data? = nil,
                timeout: Double = 30, connectTimeout: Double = 10, followRedirects: Bool = false, bodyFile: String? = nil,
                maxBodyBytes: Int? = nil, truncateBody: Bool = false, resolve: [String] = [], uploadFile: String? = nil,
                awsSigV4: (scope: String, credentials: String)? = nil) {
        self.awsSigV4 = awsSigV4
        self.uploadFile = uploadFile
        self.resolve = resolve
        self.truncateBody = truncateBody
        self.bodyFile = bodyFile
        self.maxBodyBytes = maxBodyBytes
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.followRedirects = followRedirects
    }
}

/// An HTTP response.
public struct HTTPClientResponse: Sendable {
    /// The status code.
    public var status: Int
    /// Header lines of the final response, names lowercased.
    public var headers: [(String, String)]
    /// The body.
    public var body: Data
    /// Whether the request went over a connection kept from an earlier one.
    public var reusedConnection: Bool
    /// Whether the body was cut at the request's `maxBodyBytes`.
    public var truncated = false

    /// The first header with a name (case-insensitive).
    public func header(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first { $0.0 == n }?.1
    }
}

/// A failure before a response arrived.
public struct HTTPClientError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure.
    public enum Code: String, Sendable {
        /// The time limit passed.
        case timeout
        /// The host could not be resolved or reached, or the connection broke.
        case connection
        /// The TLS handshake or certificate check failed.
        case tls
        /// The URL or request is malformed.
        case invalidRequest = "invalid_request"
        /// The body passed `maxBodyBytes`, or could not be written to `bodyFile`.
        case tooLarge = "too_large"
        /// Anything else libcurl reports.
        case other
    }

    /// What kind of failure.
    public var code: Code
    /// libcurl's explanation.
    public var message: String
    /// The URL (without its query, which may hold secrets).
    public var url: String

    /// `http <code>: message (url)`.
    public var description: String { "http \(code.rawValue): \(message) (\(url))" }
}

/// An HTTP client over libcurl: TLS through the system's OpenSSL, timeouts, redirects off
/// by default, and connection reuse (idle easy handles keep their connections).
public final class HTTPClient: @unchecked Sendable {
    // A libcurl easy handle is not thread-safe: each is used by one request at a time,
    // taken from and returned to `idle` under `lock`.
    private let lock = NSLock()
    private var idle: [UnsafeMutableRawPointer] = []
    private let maxIdle: Int
    private let queue = DispatchQueue(label: "almanac.http", attributes: .concurrent)

    /// A client shared by the process.
    public static let shared = HTTPClient()

    private static let globalInit: Bool = {
        curl_global_init(Int(CURL_GLOBAL_ALL))
        return true
    }()

    /// Makes a client keeping up to `maxIdleConnections` handles (and their connections) for reuse.
    public init(maxIdleConnections: Int = 16) {
        _ = HTTPClient.globalInit
        self.maxIdle = maxIdleConnections
    }

    deinit {
        for h in idle { curl_easy_cleanup(h) }
    }

    /// Sends a request; any status code is a response, not an error.
    /// - Throws: `HTTPClientError` when no response arrived.
    public func send(_ request: HTTPClientRequest) async throws -> HTTPClientResponse {
        try await withCheckedThrowingContinuation { cont in
            queue.async {
                cont.resume(with: Result { try self.perform(request) })
            }
        }
    }

    /// Sends a request on the calling thread, blocking it until the response is in: for
    /// callers on a thread of their own, like a benchmark's client loop (no hop to the
    /// client's queue and back). Async code uses `send`.
    /// - Throws: `HTTPClientError` when no response arrived.
    public func sendBlocking(_ request: HTTPClientRequest) throws -> HTTPClientResponse {
        try perform(request)
    }

    private func take() -> UnsafeMutableRawPointer {
        lock.lock()
        if let h = idle.popLast() { lock.unlock(); curl_easy_reset(h); return h }
        lock.unlock()
        return curl_easy_init()
    }

    private func give(_ h: UnsafeMutableRawPointer) {
        lock.lock()
        if idle.count < maxIdle { idle.append(h); lock.unlock(); return }
        lock.unlock()
        curl_easy_cleanup(h)
    }

    private func perform(_ request: HTTPClientRequest) throws -> HTTPClientResponse {
        let h = take()
        defer { give(h) }
        let sink = ResponseSink()
        if let path = request.bodyFile {
            guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
                throw HTTPClientError(code: .other, message: "cannot create \(path) for the download", url: request.url)
            }
            sink.file = handle
        }
        defer { try? sink.file?.close() }
        sink.limit = request.maxBodyBytes ?? Int.max
        sink.truncates = request.truncateBody
        let sinkPtr = Unmanaged.passUnretained(sink).toOpaque()
        var list: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(list) }
        for (k, v) in request.headers { list = curl_slist_append(list, "\(k): \(v)") }
        // No `Expect: 100-continue` wait before a body — except on signed requests, whose
        // signature libcurl computes over the header list, the removal included.
        if request.body != nil || request.uploadFile != nil, request.awsSigV4 == nil,
           !request.headers.contains(where: { $0.0.lowercased() == "expect" }) {
            list = curl_slist_append(list, "Expect:")
        }
        var pins: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(pins) }
        for entry in request.resolve { pins = curl_slist_append(pins, entry) }
        if pins != nil { _ = almanac_curl_setopt_ptr(h, CURLOPT_RESOLVE, UnsafeMutableRawPointer(pins)) }
        let safeURL = request.url.split(separator: "?").first.map(String.init) ?? request.url
        _ = almanac_curl_setopt_str(h, CURLOPT_URL, request.url)
        _ = almanac_curl_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        _ = almanac_curl_setopt_long(h, CURLOPT_TIMEOUT_MS, Int(request.timeout * 1000))
        _ = almanac_curl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, Int(request.connectTimeout * 1000))
        _ = almanac_curl_setopt_long(h, CURLOPT_FOLLOWLOCATION, request.followRedirects ? 1 : 0)
        _ = almanac_curl_setopt_long(h, CURLOPT_MAXREDIRS, 5)
        _ = almanac_curl_setopt_long(h, CURLOPT_PROTOCOLS, Int(CURLPROTO_HTTP | CURLPROTO_HTTPS))
        _ = almanac_curl_setopt_str(h, CURLOPT_CUSTOMREQUEST, request.method)
        _ = almanac_curl_setopt_str(h, CURLOPT_USERAGENT, "almanac/1")
        _ = almanac_curl_setopt_ptr(h, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(list))
        _ = almanac_curl_setopt_datacb(h, CURLOPT_WRITEFUNCTION, curlWriteBody)
        _ = almanac_curl_setopt_ptr(h, CURLOPT_WRITEDATA, sinkPtr)
        _ = almanac_curl_setopt_datacb(h, CURLOPT_HEADERFUNCTION, curlWriteHeader)
        _ = almanac_curl_setopt_ptr(h, CURLOPT_HEADERDATA, sinkPtr)
        if request.method == "HEAD" { _ = almanac_curl_setopt_long(h, CURLOPT_NOBODY, 1) }
        if let sign = request.awsSigV4 {
            _ = almanac_curl_setopt_str(h, CURLOPT_AWS_SIGV4, sign.scope)
            _ = almanac_curl_setopt_str(h, CURLOPT_USERPWD, sign.credentials)
        }
        // An upload is read from its file as libcurl sends it (fread on the FILE, its default).
        var upload: UnsafeMutablePointer<FILE>?
        defer { if let upload { fclose(upload) } }
        if let path = request.uploadFile {
            guard let file = fopen(path, "rb") else {
                throw HTTPClientError(code: .invalidRequest, message: "cannot read \(path) for the upload: \(String(cString: strerror(errno)))", url: safeURL)
            }
            upload = file
            var info = stat()
            guard fstat(fileno(file), &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
                throw HTTPClientError(code: .invalidRequest, message: "\(path) is not a regular file", url: safeURL)
            }
            _ = almanac_curl_setopt_long(h, CURLOPT_POST, 1)
            _ = almanac_curl_setopt_ptr(h, CURLOPT_READDATA, UnsafeMutableRawPointer(file))
            _ = almanac_curl_setopt_off(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(info.st_size))
        }
        let body = request.body ?? Data()
        let code: CURLcode = body.withUnsafeBytes { raw in
            if request.body != nil && request.uploadFile == nil {
                _ = almanac_curl_setopt_off(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(raw.count))
                _ = almanac_curl_setopt_ptr(h, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
            return curl_easy_perform(h)
        }
        withExtendedLifetime(sink) {}
        guard code == CURLE_OK || (code == CURLE_WRITE_ERROR && sink.truncated) else {
            let message = String(cString: curl_easy_strerror(code))
            let kind: HTTPClientError.Code
            switch code {
            case CURLE_OPERATION_TIMEDOUT: kind = .timeout
            case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING,
                 CURLE_COULDNT_RESOLVE_PROXY, CURLE_PARTIAL_FILE:
                kind = .connection
            case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
                 CURLE_SSL_CACERT_BADFILE:
                kind = .tls
            case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: kind = .invalidRequest
            case CURLE_WRITE_ERROR: kind = .tooLarge
            default: kind = .other
            }
            throw HTTPClientError(code: kind, message: message, url: safeURL)
        }
        var status = 0
        _ = almanac_curl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
        var connects = 0
        _ = almanac_curl_getinfo_long(h, CURLINFO_NUM_CONNECTS, &connects)
        var response = HTTPClientResponse(status: status, headers: sink.finalHeaders(), body: sink.body, reusedConnection: connects == 0)
        response.truncated = sink.truncated
        return response
    }
}

/// Collects one response; libcurl calls back on the thread running `curl_easy_perform`.
final class ResponseSink {
    var body = Data()
    var headerLines: [String] = []
    /// Where the body goes instead of `body`, for downloads.
    var file: FileHandle?
    /// Body bytes so far, and the most allowed.
    var received = 0, limit = Int.max
    /// Whether a body over the limit is cut there (and the transfer stopped) rather than refused; and whether it was.
    var truncates = false, truncated = false
    /// The most header lines kept; a response with more is refused.
    static let maxHeaderLines = 500

    /// Takes one chunk; false stops the transfer (over the limit, or the file cannot be written).
    func take(_ chunk: UnsafeRawBufferPointer) -> Bool {
        received += chunk.count
        guard received <= limit else {
            if truncates && file == nil {
                body.append(contentsOf: chunk.prefix(max(0, limit - body.count)))
                truncated = true
            }
            return false
        }
        if let file {
            do { try file.write(contentsOf: Data(chunk)) } catch { return false }
        } else {
            body.append(contentsOf: chunk)
        }
        return true
    }

    /// Headers of the last response (after any 1xx or redirect responses).
    func finalHeaders() -> [(String, String)] {
        var out: [(String, String)] = []
        for line in headerLines {
            if line.hasPrefix("HTTP/") { out = []; continue }
            guard let colon = line.firstIndex(of: ":") else { continue }
            out.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        return out
    }
}

private let curlWriteBody: almanac_curl_data_cb = { ptr, size, count, userdata in
    guard let ptr, let userdata else { return 0 }
    let n = size * count
    let ok = Unmanaged<ResponseSink>.fromOpaque(userdata).takeUnretainedValue().take(UnsafeRawBufferPointer(start: ptr, count: n))
    return ok ? n : 0
}

private let curlWriteHeader: almanac_curl_data_cb = { ptr, size, count, userdata in
    guard let ptr, let userdata else { return 0 }
    let n = size * count
    let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    let sink = Unmanaged<ResponseSink>.fromOpaque(userdata).takeUnretainedValue()
    guard sink.headerLines.count < ResponseSink.maxHeaderLines else { return 0 }
    if !line.isEmpty { sink.headerLines.append(line) }
    return n
}
