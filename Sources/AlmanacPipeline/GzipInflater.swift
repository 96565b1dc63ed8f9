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

    /// Decompresses the next piece of input.
    /// - Throws: `PipelineError` when the data is not valid gzip.
    func inflate(_ input: Data) throws -> Data {
        var output = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 18)
        try input.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            guard let base = raw.bindMemory(to: Bytef.self).baseAddress else { return }
            stream.next_in = UnsafeMutablePointer(mutating: base)
            stream.avail_in = uInt(raw.count)
            while stream.avail_in > 0 {
                if finished {
                    // Another gzip member follows: start again.
                    inflateReset(&stream)
                    finished = false
                }
                let status = buffer.withUnsafeMutableBufferPointer { out -> Int32 in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    let s = CZlib.inflate(&stream, Z_NO_FLUSH)
                    output.append(out.baseAddress!, count: out.count - Int(stream.avail_out))
                    return s
                }
                switch status {
                case Z_STREAM_END: finished = true
                case Z_OK, Z_BUF_ERROR: if stream.avail_in > 0 && status == Z_BUF_ERROR { throw PipelineError("the gzip data is corrupt") }
                default: throw PipelineError("the gzip data is corrupt (zlib status \(status))")
                }
            }
        }
        return output
    }
}
