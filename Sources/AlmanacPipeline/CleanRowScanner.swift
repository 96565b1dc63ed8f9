import Foundation

/// Reads a data file's bytes on their way to `COPY` and decides whether every row is clean
/// in the common shape, so that the file can be loaded straight into its batch table.
///
/// A clean row has exactly the header's fields, no quotes and no control characters, an item id of 1 to 200 bytes (no U+0080–U+00BF), a
/// timestamp of one of `Ingest.cleanTimestampShapes`, and a plain decimal value — a subset
/// of what the row-by-row check accepts. The first row that is not clean ends the scan
/// (`clean` false) and the ingest falls back to that check, which says what is wrong where.
///
/// It also watches the order of keys: while each item's rows are contiguous and their
/// timestamps of one shape strictly increase, no item and timestamp can repeat, and the
/// database need not look for duplicates (`keysMayRepeat` false). An equal timestamp is a
/// duplicate (`duplicate`); anything else out of order leaves it to the database.
struct CleanRowScanner {
    /// Whether every row so far is clean.
    private(set) var clean = true
    /// Whether a row repeated the previous row's item and timestamp.
    private(set) var duplicate = false
    /// Whether keys are out of order, so the database must check for repeats.
    private(set) var keysMayRepeat = false
    /// Data rows scanned.
    private(set) var rows = 0
    /// The distinct items.
    private(set) var items = Set<[UInt8]>()
    /// Whether every timestamp has the first one's shape and zone, so that byte order is
    /// time order across the file and `earliest`/`latest` are right.
    private(set) var oneShape = true
    /// The earliest and latest timestamps as written (meaningful when `oneShape`).
    private(set) var earliest: [UInt8] = [], latest: [UInt8] = []

    private let columnCount: Int
    private let itemField: Int, timestampField: Int, valueField: Int
    private var headerSkipped = false
    private var pending: [UInt8] = []
    private var currentItem: [UInt8] = []
    private var lastTimestamp: [UInt8] = []
    private var lastZone = 0, firstZone = 0

    /// The longest line a clean file has.
    private let maxLineBytes: Int

    /// Makes a scanner for files whose header is `columns` (as `Ingest.columns(header:)` returns them).
    init(columns: [String], maxLineBytes: Int = Dataset.defaultMaxLineBytes) {
        self.maxLineBytes = maxLineBytes
        columnCount = columns.count
        itemField = columns.firstIndex(of: "item_id") ?? 0
        timestampField = columns.firstIndex(of: "timestamp") ?? 1
        valueField = columns.firstIndex(of: "target_value") ?? 2
    }

    /// Scans the next bytes of the file (the header line first).
    mutating func feed(_ chunk: Data) {
        guard clean else { return }
        chunk.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var start = 0
            for i in 0..<raw.count where raw[i] == 0x0a {
                if pending.isEmpty {
                    line(UnsafeRawBufferPointer(rebasing: raw[start..<i]))
                } else {
                    pending.append(contentsOf: raw[start..<i])
                    let whole = pending
                    pending.removeAll(keepingCapacity: true)
                    whole.withUnsafeBytes { line($0) }
                }
                start = i + 1
                if !clean { return }
            }
            pending.append(contentsOf: raw[start..<raw.count])
            if pending.count > maxLineBytes { clean = false }  // a line past the bound: the checked way says so
        }
    }

    /// Scans a last line that has no newline.
    mutating func finish() {
        guard clean, !pending.isEmpty else { return }
        let whole = pending
        pending.removeAll()
        whole.withUnsafeBytes { line($0) }
    }

    private mutating func line(_ bytes: UnsafeRawBufferPointer) {
        guard headerSkipped else { headerSkipped = true; return }
        var end = bytes.count
        if end > 0 && bytes[end - 1] == 0x0d { end -= 1 }  // CRLF
        var field = 0, start = 0
        var item = 0..<0, timestamp = 0..<0, value = 0..<0
        for i in 0...end {
            let b: UInt8 = i == end ? 0x2c : bytes[i]
            if b == 0x22 { clean = false; return }  // quoted fields: left to the row check
            guard b == 0x2c else { continue }
            if field == itemField { item = start..<i } else if field == timestampField { timestamp = start..<i } else if field == valueField { value = start..<i }
            field += 1
            start = i + 1
        }
        guard field == columnCount, !item.isEmpty, item.count <= 200, !bytes[item].contains(where: { $0 < 0x20 || $0 == 0x7f || $0 == 0xc2 }),
              let zone = Self.timestampZone(bytes, timestamp), Self.isPlainNumber(bytes, value) else {
            clean = false
            return
        }
        rows += 1
        let ts = UnsafeRawBufferPointer(rebasing: bytes[timestamp])
        if !currentItem.elementsEqual(bytes[item]) {
            currentItem = Array(bytes[item])
            if !items.insert(currentItem).inserted { keysMayRepeat = true }
        } else if !Self.sameShape(ts, zone, as: lastTimestamp, lastZone) {
            keysMayRepeat = true  // another shape or zone: byte order is not time order
        } else if ts.elementsEqual(lastTimestamp) {
            duplicate = true
        } else if ts.lexicographicallyPrecedes(lastTimestamp) {
            keysMayRepeat = true
        }
        if rows == 1 {
            earliest = Array(ts)
            latest = earliest
            firstZone = zone
        } else if oneShape {
            if Self.sameShape(ts, zone, as: earliest, firstZone) {
                if ts.lexicographicallyPrecedes(earliest) { earliest = Array(ts) }
                if latest.lexicographicallyPrecedes(ts) { latest = Array(ts) }
            } else {
                oneShape = false
            }
        }
        lastTimestamp.removeAll(keepingCapacity: true)
        lastTimestamp.append(contentsOf: ts)
        lastZone = zone
    }

    /// Whether timestamp `a` (zone from `zone`) has `b`'s length, separator and zone, so that
    /// their byte order is their time order.
    static func sameShape(_ a: UnsafeRawBufferPointer, _ zone: Int, as b: [UInt8], _ bZone: Int) -> Bool {
        zone == bZone && a.count == b.count && (a.count == 10 || a[10] == b[10]) && a[zone...].elementsEqual(b[zone...])
    }

    /// Where the zone starts in a clean timestamp (its length when it has none); nil when the
    /// field is not one of the clean shapes.
    static func timestampZone(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Int? {
        let n = r.count, o = r.lowerBound
        @inline(__always) func digit(_ k: Int) -> Bool { b[o + k] &- 0x30 < 10 }
        @inline(__always) func is_(_ k: Int, _ c: UInt8) -> Bool { b[o + k] == c }
        guard n >= 10, digit(0), digit(1), digit(2), digit(3), is_(4, 0x2d), digit(5), digit(6), is_(7, 0x2d), digit(8), digit(9) else { return nil }
        if n == 10 { return 10 }
        guard n >= 16, is_(10, 0x20) || is_(10, 0x54), digit(11), digit(12), is_(13, 0x3a), digit(14), digit(15) else { return nil }
        var p = 16
        if n >= 19, is_(16, 0x3a), digit(17), digit(18) { p = 19 }
        switch n - p {
        case 0: return p
        case 1: return is_(p, 0x5a) ? p : nil                                                   // Z
        case 3: return (is_(p, 0x2b) || is_(p, 0x2d)) && digit(p + 1) && digit(p + 2) ? p : nil  // +hh
        case 5: return (is_(p, 0x2b) || is_(p, 0x2d)) && digit(p + 1) && digit(p + 2) && digit(p + 3) && digit(p + 4) ? p : nil
        case 6: return (is_(p, 0x2b) || is_(p, 0x2d)) && digit(p + 1) && digit(p + 2) && is_(p + 3, 0x3a) && digit(p + 4) && digit(p + 5) ? p : nil
        default: return nil
        }
    }

    /// Whether the field matches `Ingest.plainNumberPattern`.
    static func isPlainNumber(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Bool {
        var i = r.lowerBound
        let end = r.upperBound
        func isDigit(_ k: Int) -> Bool { k < end && b[k] &- 0x30 < 10 }
        func runOfDigits() -> Bool {
            guard isDigit(i) else { return false }
            while isDigit(i) { i += 1 }
            return true
        }
        if i < end && b[i] == 0x2d { i += 1 }
        guard runOfDigits() else { return false }
        if i < end && b[i] == 0x2e { i += 1; guard runOfDigits() else { return false } }
        if i < end && (b[i] == 0x65 || b[i] == 0x45) {
            i += 1
            if i < end && (b[i] == 0x2b || b[i] == 0x2d) { i += 1 }
            guard runOfDigits() else { return false }
        }
        return i == end
    }
}
