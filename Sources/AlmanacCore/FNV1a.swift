/// The 64-bit FNV-1a hash: a short, stable name derived from text (not for security).
public enum FNV1a {
    /// The hash of the text's UTF-8 bytes, as lowercase hex.
    public static func hex(_ s: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return String(h, radix: 16)
    }
}
