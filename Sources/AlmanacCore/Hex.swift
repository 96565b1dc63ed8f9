/// Lower-case hexadecimal text of bytes (digests, random ids), written digit by digit:
/// `String(format: "%02x")` costs microseconds a byte, and digests are taken per request.
public enum Hex {
    /// The bytes as lower-case hex, two digits each.
    public static func lowercase<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
