import CZlib
import Foundation

/// Streaming gzip decompression with zlib (concatenated members are followed).
final class GzipInflater {
    private var stream = z_stream()
    /// Whether the end of the compressed data was reached.
    private(set) var finished = false

    init() throws {
        guard almanac_inflate_init_gzip(&stream) == Z_OK else { throw PipelineError("zlib could not start decompressing") }
    }

    deinit { inflateEnd(&stream) }

    /// Compressed bytes given but not yet inflated, and how far into them zlib has read.
    private var input: [UInt8] = []
    private var consumed = 0

    /// Whether every byte given to `push` has been inflated.
    var needsInput: Bool { consumed >= input.count }

    /// Gives the next piece of compressed input (call once `needsInput`).
    func push(_ data: Data) {
        input = Array(data)
        consumed = 0
    }

    /// Inflates pending input until about `max` bytes came out or the input is used up, so
    /// that a small input that inflates hugely (a gzip bomb) is read a bounded piece at a time.
    /// - Throws: `PipelineError` when the data is not valid gzip.
    func pull(max: Int) throws -> Data {
        var output = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 18)
        try input.withUnsafeMutableBufferPointer { raw in
            guard let base = raw.baseAddress else { return }
            while consumed < raw.count && output.count < max {
                if finished {
                    // Another gzip member follows: start again.
                    inflateReset(&stream)
                    finished = false
                }
                stream.next_in = base + consumed
                stream.avail_in = uInt(raw.count - consumed)
                let status = buffer.withUnsafeMutableBufferPointer { out -> Int32 in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    let s = CZlib.inflate(&stream, Z_NO_FLUSH)
                    output.append(out.baseAddress!, count: out.count - Int(stream.avail_out))
                    return s
                }
                let left = Int(stream.avail_in)
                let progressed = raw.count - consumed - left
                consumed = raw.count - left
                switch status {
                case Z_STREAM_END: finished = true
                case Z_OK: break
                case Z_BUF_ERROR: if progressed == 0 && left > 0 { throw PipelineError("the gzip data is corrupt") }
                default: throw PipelineError("the gzip data is corrupt (zlib status \(status))")
                }
            }
        }
        return output
    }
}
