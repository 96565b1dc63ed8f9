import Foundation

/// Reads a data file's CSV strictly, on its way to the checked ingest's `COPY`, and writes
/// each record again as plain CSV with its line number and, for a bad row, what is wrong.
///
/// RFC 4180 with the rules a data file needs: a record is one line, except that a quoted
/// field of a related column may run across line breaks; a quoted `item_id`, `timestamp`
/// or `target_value` that reaches the end of its line is a bad row (an unclosed quote must
/// not swallow the rows after it), and so is a quote left open at the end of the file, a
/// record with another number of fields than the header, a key with a control character, a
/// NUL byte, text that is not UTF-8, and a line longer than the dataset's bound (which is
/// skipped, never held whole). Blank lines are skipped. Every bad row keeps its line
/// number and reason; nothing a file holds can make the copy itself fail.
struct StrictCSV {
    /// The header's names.
    let columns: [String]
    /// The longest record read, in bytes.
    let maxLineBytes: Int
    private let keys: Set<Int>
    private let controlChecked: Set<Int>

    /// Physical lines read so far (the header is line 1).
    private(set) var line = 0
    /// Records written so far.
    private(set) var records = 0
    private var partial: [UInt8] = []
    private var skipping = false
    private var record = Record()

    /// One record being read.
    struct Record {
        var fields: [[UInt8]] = []
        var quoted: [Bool] = []
        var current: [UInt8] = []
        var currentQuoted = false
        var inQuotes = false
        var afterQuote = false
        var firstLine = 0
        var flaw: String?
        var isEmpty: Bool { fields.isEmpty && current.isEmpty && !currentQuoted }
        var bytes: Int { fields.reduce(current.count) { $0 + $1.count } }
    }

    /// Makes a reader for a file whose header is `columns`.
    init(columns: [String], maxLineBytes: Int) {
        self.columns = columns
        self.maxLineBytes = maxLineBytes
        keys = Set(Ingest.requiredColumns.compactMap { columns.firstIndex(of: $0) })
        controlChecked = Set(["item_id", "timestamp"].compactMap { columns.firstIndex(of: $0) })
    }

    /// Reads the next bytes of the file (header first) and appends the records they end to `out`.
    mutating func feed(_ chunk: Data, into out: inout Data) {
        chunk.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var start = 0
            while start < raw.count {
                guard let nl = raw[start...].firstIndex(of: 0x0a) else {
                    take(UnsafeRawBufferPointer(rebasing: raw[start...]), lineEnds: false, into: &out)
                    return
                }
                take(UnsafeRawBufferPointer(rebasing: raw[start..<nl]), lineEnds: true, into: &out)
                start = nl + 1
            }
        }
    }

    /// Ends the file: a last line without a newline, and a quote still open.
    mutating func finish(into out: inout Data) {
        if !partial.isEmpty || skipping { take(UnsafeRawBufferPointer(start: nil, count: 0), lineEnds: true, into: &out) }
        if record.inQuotes {
            let name = columns[min(record.fields.count, columns.count - 1)]
            record.flaw = record.flaw ?? "the quoted \(name) that starts on this line is never closed"
            record.inQuotes = false
            if record.current.last == 0x0a { record.current.removeLast() }  // the break the open quote carried on
            endField()
            emit(into: &out)
        }
    }

    /// Bytes of one physical line, or of its start when it goes on in the next chunk.
    private mutating func take(_ bytes: UnsafeRawBufferPointer, lineEnds: Bool, into out: inout Data) {
        if skipping {
            guard lineEnds else { return }
            skipping = false
            partial.removeAll(keepingCapacity: true)
            return
        }
        if line > 0 && partial.count + bytes.count + record.bytes > maxLineBytes {
            line += 1
            let first = record.isEmpty ? line : record.firstLine
            record = Record()
            record.firstLine = first
            record.flaw = "the line is longer than \(maxLineBytes) bytes (the dataset's max_line_bytes)"
            emit(into: &out)
            partial.removeAll(keepingCapacity: true)
            skipping = !lineEnds
            return
        }
        guard lineEnds else {
            partial.append(contentsOf: bytes)
            return
        }
        line += 1
        if partial.isEmpty {
            physicalLine(bytes, into: &out)
        } else {
            partial.append(contentsOf: bytes)
            let whole = partial
            partial.removeAll(keepingCapacity: true)
            whole.withUnsafeBytes { physicalLine($0, into: &out) }
        }
    }

    /// Tokenizes one whole physical line, going on with a record a quoted field left open.
    private mutating func physicalLine(_ raw: UnsafeRawBufferPointer, into out: inout Data) {
        if line == 1 { return }  // the header, read already
        var end = raw.count
        if !record.inQuotes {
            if end > 0 && raw[end - 1] == 0x0d { end -= 1 }
            if end == 0 && record.isEmpty { return }  // a blank line
        }
        if record.isEmpty && !record.inQuotes { record.firstLine = line }
        var i = 0
        while i < end {
            let b = raw[i]
            if b == 0 {
                record.flaw = record.flaw ?? "the line holds a NUL byte"
                i += 1
                continue
            }
            if record.inQuotes {
                if b == 0x22 {
                    if i + 1 < end && raw[i + 1] == 0x22 {
                        record.current.append(0x22)
                        i += 2
                        continue
                    }
                    record.inQuotes = false
                    record.afterQuote = true
                } else {
                    record.current.append(b)
                }
            } else if b == 0x2c {
                endField()
            } else if b == 0x22 && record.current.isEmpty && !record.currentQuoted {
                record.inQuotes = true
                record.currentQuoted = true
            } else {
                if record.afterQuote {
                    record.flaw = record.flaw ?? "text follows the closing quote of \(name(record.fields.count))"
                }
                record.current.append(b)
            }
            i += 1
        }
        if record.inQuotes {
            let field = record.fields.count
            if keys.contains(field) || field >= columns.count {
                record.flaw = record.flaw ?? "the quoted \(name(field)) runs past the end of its line (is a closing quote missing?)"
                record.inQuotes = false
            } else {
                // A related column's quoted text may hold line breaks: the record goes on.
                record.current.append(0x0a)
                return
            }
        }
        endField()
        emit(into: &out)
    }

    private func name(_ field: Int) -> String { field < columns.count ? columns[field] : "field \(field + 1)" }

    private mutating func endField() {
        record.fields.append(record.current)
        record.quoted.append(record.currentQuoted)
        record.current = []
        record.currentQuoted = false
        record.afterQuote = false
    }

    /// Writes a record as `line,field…,flaw`: fields quoted (an unquoted empty field stays NULL).
    private mutating func emit(into out: inout Data) {
        var r = record
        record = Record()
        records += 1
        if r.flaw == nil && r.fields.count != columns.count && !r.fields.isEmpty {
            r.flaw = "the row has \(r.fields.count) fields; the header has \(columns.count)"
        }
        for k in controlChecked where k < r.fields.count && r.flaw == nil && Self.hasControl(r.fields[k]) {
            r.flaw = "\(columns[k]) holds a control character"
        }
        out.append(contentsOf: Array(String(r.firstLine).utf8))
        for k in 0..<columns.count {
            out.append(0x2c)
            let field = k < r.fields.count ? r.fields[k] : []
            let wasQuoted = k < r.quoted.count && r.quoted[k]
            guard !field.isEmpty || wasQuoted else { continue }
            var text = String(validating: field, as: UTF8.self)
            if text == nil {
                r.flaw = r.flaw ?? "\(name(k)) is not UTF-8 text"
                text = String(decoding: field, as: UTF8.self)
            }
            Self.appendQuoted(text!.utf8.filter { $0 != 0 }, to: &out)
        }
        out.append(0x2c)
        if let flaw = r.flaw { Self.appendQuoted(Array(flaw.utf8), to: &out) }
        out.append(0x0a)
    }

    /// Whether UTF-8 bytes hold a C0 control character, DEL or a C1 control character.
    static func hasControl(_ bytes: [UInt8]) -> Bool {
        for (i, b) in bytes.enumerated() {
            if b < 0x20 || b == 0x7f { return true }
            if b == 0xc2 && i + 1 < bytes.count && (0x80...0x9f).contains(bytes[i + 1]) { return true }
        }
        return false
    }

    /// Appends a CSV field in double quotes, its quotes doubled.
    static func appendQuoted<S: Sequence>(_ bytes: S, to out: inout Data) where S.Element == UInt8 {
        out.append(0x22)
        for b in bytes {
            out.append(b)
            if b == 0x22 { out.append(0x22) }
        }
        out.append(0x22)
    }
}
