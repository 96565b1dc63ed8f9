import AlmanacCore
@testable import AlmanacPipeline
@testable import AlmanacAPI
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Hummingbird
import Testing

/// The ingest function end to end: real Postgres, the mock cluster, the `fn-ingest` process.
@Suite(.serialized) struct IngestTests {
    /// Publishes a data arrival for `file` (a name in the drop folder, or any URL text) and
    /// waits for its ingest report.
    func arrive(_ d: TestDeployment, dataset: String = "sales", url: String) async throws -> (accepted: Bool, report: JSONValue) {
        var e = CloudEvent(id: UUID().uuidString.lowercased(), source: "test", type: "almanac.data.arrived", subject: dataset,
                           json: ["dataset": .string(dataset), "url": .string(url)])
        e.tenant = "default"
        try await d.publish(e)
        let settled = "SELECT (SELECT count(*) FROM ingest_reports WHERE ingest_id = $1) + (SELECT count(*) FROM dead_letters WHERE event_id = $1) AS n"
        _ = try await d.waitForCount(settled, [e.id], atLeast: 1)
        let dead = try await d.db.query("SELECT error FROM dead_letters WHERE event_id = $1", [e.id])
        #expect(dead.isEmpty, "\(url) was dead-lettered: \(dead.first?.text("error") ?? "")")
        let rows = try await d.db.query("SELECT accepted, report::text AS report FROM ingest_reports WHERE ingest_id = $1", [e.id])
        let row = try #require(rows.first, "no ingest report for \(url)")
        return (row.text("accepted") == "t", try JSONValue(parsing: Data((row.text("report") ?? "{}").utf8)))
    }

    func write(_ d: TestDeployment, _ name: String, _ text: String) throws -> String {
        try FileManager.default.createDirectory(atPath: "\(d.dropDirectory)/default/sales", withIntermediateDirectories: true)
        let path = "\(d.dropDirectory)/default/sales/\(name)"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return "file://" + path
    }

    func rows(items: [String], days: Range<Int>, value: (String, Int) -> Double) -> String {
        var out = ""
        for item in items {
            for day in days {
                out += "\(item),2026-01-\(String(format: "%02d", day + 1)),\(value(item, day)),\(day % 3)\n"
            }
        }
        return out
    }

    @Test func filesBecomeVersionsOnceAndBadRowsAreReportedByLine() async throws {
        let d = try await TestDeployment(functions: [], pipeline: ["ingest"])
        try await DatasetStore.create(Dataset(tenant: "default", name: "sales", horizon: 3), in: d.db)
        try await d.startControlPlane()

        // 3 items × 10 days and one bad row (line 32): accepted, the bad row reported.
        let body = "item_id,timestamp,target_value,price\n" + rows(items: ["A", "B", "C"], days: 0..<10) { _, day in Double(day) }
        let first = try write(d, "jan.csv", body + "C,2026-01-11,n/a,1\n")
        let r1 = try await arrive(d, url: first)
        #expect(r1.accepted)
        #expect(r1.report["rows_read"]?.intValue == 31 && r1.report["rows_rejected"]?.intValue == 1)
        #expect(r1.report["problems"]?.arrayValue?.first?["line"]?.intValue == 32)
        #expect(r1.report["problems"]?.arrayValue?.first?["reason"]?.stringValue?.contains("\"n/a\" is not a number") == true)
        #expect(try await d.count("SELECT count(*) AS n FROM observations WHERE dataset = 'sales'") == 30)
        #expect(try await d.count("SELECT count(*) AS n FROM observations WHERE related->>'price' = '2'") == 9)
        #expect(try await d.count("SELECT max(version) AS n FROM dataset_versions") == 1)

        // The same file again: nothing duplicated, no new version.
        let again = try await arrive(d, url: first)
        #expect(again.accepted && again.report["rows_changed"]?.intValue == 0)
        #expect(try await d.count("SELECT count(*) AS n FROM observations") == 30)
        #expect(try await d.count("SELECT count(*) AS n FROM dataset_versions") == 1)

        // Later data, gzip-compressed, with one revised value: a second version.
        let later = try write(d, "feb.csv", "item_id,timestamp,target_value,price\nA,2026-01-01,99,0\n"
                              + rows(items: ["A", "B", "C"], days: 10..<14) { _, day in Double(day) })
        let laterPath = String(later.dropFirst("file://".count))
        _ = try await offThePool { try Subprocess.run("/bin/gzip", ["-f", laterPath]) }
        let r3 = try await arrive(d, url: later + ".gz")
        #expect(r3.accepted, "\(r3.report)")
        #expect(r3.report["rows_changed"]?.intValue == 13)
        #expect(try await d.count("SELECT count(*) AS n FROM observations") == 42)
        #expect(try await d.count("SELECT count(*) AS n FROM observations WHERE item_id = 'A' AND ts = '2026-01-01' AND value = 99 AND version = 2") == 1)

        // Each accepted file emitted almanac.dataset.imported with the counts, in order (the
        // router archives them after the function's commit: wait for it).
        try await d.waitForCount("SELECT count(*) AS n FROM event_archive WHERE type = 'almanac.dataset.imported'", atLeast: 3)
        let imported = try await EventArchive.select(in: d.db, .init(type: "almanac.dataset.imported", subject: "sales"))
        #expect(imported.map { $0.jsonData?["version"]?.intValue } == [1, 1, 2])
        await d.shutdown()
    }

    /// Bad files: each is refused whole with a reason that says what is wrong, and the
    /// dataset keeps exactly what it had.
    static let badFiles: [(name: String, body: [UInt8], reason: String)] = {
        let header = "item_id,timestamp,target_value\n"
        func text(_ s: String) -> [UInt8] { Array(s.utf8) }
        return [
            ("no-header.csv", text("A,2026-01-01,1\nA,2026-01-02,2\n"), "the header must name"),
            ("wrong-names.csv", text("item,date,value\nA,2026-01-01,1\n"), "item_id is missing"),
            ("semicolons.csv", text("item_id;timestamp;target_value\nA;2026-01-01;1\n"), "separated by \";\""),
            ("tabs.csv", text("item_id\ttimestamp\ttarget_value\nA\t2026-01-01\t1\n"), "separated by tabs"),
            ("empty.csv", [], "the file is empty"),
            ("header-only.csv", text(header), "no data rows"),
            ("blank-lines.csv", text("\n\n\n"), "the file is empty"),
            ("all-text.csv", text(header + "A,2026-01-01,abc\nA,2026-01-02,def\n"), "every row was rejected"),
            ("nan.csv", text(header + "A,2026-01-01,NaN\nA,2026-01-02,nan\n"), "is not finite"),
            ("inf.csv", text(header + "A,2026-01-01,Infinity\nA,2026-01-02,-inf\n"), "is not finite"),
            ("overflow.csv", text(header + "A,2026-01-01,1e999\n"), "out of range"),
            ("us-dates.csv", text(header + "A,01/02/2026,1\nA,01/03/2026,2\n"), "is not YYYY-MM-DD"),
            ("mixed-dates.csv", text(header + "A,2026-01-01,1\nA,02/01/2026,2\nA,Jan 3 2026,3\n"), "above the dataset's limit"),
            ("bad-day.csv", text(header + "A,2026-02-30,1\n"), "is not YYYY-MM-DD"),
            ("empty-item.csv", text(header + ",2026-01-01,1\n ,2026-01-02,2\n"), "item_id is empty"),
            ("empty-value.csv", text(header + "A,2026-01-01,\n"), "target_value is empty"),
            ("empty-timestamp.csv", text(header + "A,,1\n"), "timestamp is empty"),
            ("duplicates.csv", text(header + "A,2026-01-01,1\nA,2026-01-01,1\nA,2026-01-02,1\nA,2026-01-02,2\n"), "above the dataset's limit"),
            ("too-many-fields.csv", text(header + "A,2026-01-01,1,extra\n"), "line 2: the row has 4 fields; the header has 3"),
            ("too-few-fields.csv", text(header + "A,2026-01-01\n"), "line 2: the row has 2 fields; the header has 3"),
            ("open-quote.csv", text(header + "\"A,2026-01-01,1\n"), "line 2: the quoted item_id runs past the end of its line"),
            ("latin1.csv", text(header) + [0x41, 0xe9, 0x2c] + text("2026-01-01,1\n"), "line 2: item_id is not UTF-8 text"),
            ("control-item.csv", text(header + "A\u{7}B,2026-01-01,1\n"), "line 2: item_id holds a control character"),
            ("nul-byte.csv", text(header + "A,2026-01-01,1\u{0}\n"), "line 2: the line holds a NUL byte"),
            ("text-after-quote.csv", text(header + "\"A\"B,2026-01-01,1\n"), "line 2: text follows the closing quote of item_id"),
            ("latin1-header.csv", [0x69, 0x74, 0xe9, 0x6d] + text(",timestamp,target_value\n"), "not UTF-8"),
            ("utf16.csv", [0xff, 0xfe] + Array(header.utf16.flatMap { [UInt8($0 & 0xff), UInt8($0 >> 8)] }), "not UTF-8"),
            ("huge-item.csv", text(header + String(repeating: "x", count: 300) + ",2026-01-01,1\n"), "longer than 200"),
            ("huge-header.csv", text(String(repeating: "a", count: 2 << 20)), "longer than 1 MiB"),
            ("not-gzip.csv.gz", text(header + "A,2026-01-01,1\n"), "not gzip"),
            ("truncated.csv.gz", [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x4b, 0x4c], "gzip"),
            ("bad-column.csv", text("item_id,timestamp,target_value,unit price\nA,2026-01-01,1,2\n"), "is not usable"),
            ("dup-column.csv", text("item_id,timestamp,target_value,item_id\nA,2026-01-01,1,A\n"), "appears twice"),
            ("binary.csv", [0x00, 0x01, 0x02, 0x03, 0x0a, 0xff, 0xfe], "the header must name"),
        ]
    }()

    @Test func badFilesAreRejectedWholeWithAReasonAndChangeNothing() async throws {
        let d = try await TestDeployment(functions: [], pipeline: ["ingest"])
        try await DatasetStore.create(Dataset(tenant: "default", name: "sales", horizon: 3), in: d.db)
        try await d.startControlPlane()
        let good = try write(d, "good.csv", "item_id,timestamp,target_value\nA,2026-01-01,5\nA,2026-01-02,6\n")
        #expect(try await arrive(d, url: good).accepted)
        let before = try await d.db.query("SELECT item_id, ts, value FROM observations ORDER BY 1, 2").map { "\($0.text("item_id")!)|\($0.text("ts")!)|\($0.text("value")!)" }

        var cases = Self.badFiles.map { file -> (String, String) in
            let path = "\(d.dropDirectory)/default/sales/\(file.name)"
            FileManager.default.createFile(atPath: path, contents: Data(file.body))
            return ("file://" + path, file.reason)
        }
        // Locations that are not files in the drop folder.
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("outside-\(UUID().uuidString).csv").path
        try "item_id,timestamp,target_value\nA,2026-01-01,1\n".write(toFile: outside, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: "\(d.dropDirectory)/default/sales/link.csv", withDestinationPath: outside)
        // Another tenant's file, in its own part of the drop folder.
        try FileManager.default.createDirectory(atPath: "\(d.dropDirectory)/acme/sales", withIntermediateDirectories: true)
        try "item_id,timestamp,target_value\nA,2026-01-01,1\n".write(toFile: "\(d.dropDirectory)/acme/sales/theirs.csv", atomically: true, encoding: .utf8)
        cases += [
            ("file://\(d.dropDirectory)/acme/sales/theirs.csv", "outside the drop folder of tenant default"),
            ("../acme/sales/theirs.csv", "outside the drop folder of tenant default"),
            ("file://\(d.dropDirectory)/default/sales/../../../../../../etc/passwd", "outside the drop folder"),
            ("file://" + outside, "outside the drop folder"),
            ("file://\(d.dropDirectory)/default/sales/link.csv", "outside the drop folder"),
            ("../../etc/hostname", "outside the drop folder"),
            ("file://\(d.dropDirectory)/default/sales/missing.csv", "does not exist"),
            ("file://\(d.dropDirectory)/default/sales", "is a folder"),
            ("ftp://example.com/data.csv", "unsupported scheme"),
        ]
        #expect(cases.count >= 30)
        for (url, reason) in cases {
            let r = try await arrive(d, url: url)
            #expect(!r.accepted, "\(url) was accepted")
            let said = r.report["reason"]?.stringValue ?? ""
            #expect(said.contains(reason), "\(url): reason \"\(said)\" does not say \"\(reason)\"")
        }
        let missing = try await arrive(d, dataset: "nosuch", url: good)
        #expect(!missing.accepted && missing.report["reason"]?.stringValue?.contains("almanac datasets create nosuch") == true)

        let after = try await d.db.query("SELECT item_id, ts, value FROM observations ORDER BY 1, 2").map { "\($0.text("item_id")!)|\($0.text("ts")!)|\($0.text("value")!)" }
        #expect(after == before, "a rejected file changed the data")
        #expect(try await d.count("SELECT count(*) AS n FROM dataset_versions") == 1)
        #expect(try await d.count("SELECT count(*) AS n FROM pg_tables WHERE tablename LIKE 'ingest_staging_%'") == 0, "scratch tables left behind")
        // Every rejection was announced.
        try await d.waitForCount("SELECT count(*) AS n FROM event_archive WHERE type = 'almanac.dataset.rejected'", atLeast: cases.count + 1)
        let rejected = try await EventArchive.select(in: d.db, .init(type: "almanac.dataset.rejected"))
        #expect(rejected.count == cases.count + 1)
        await d.shutdown()
    }

    @Test func httpURLsAreFetchedWithLibcurlAndPrivateHostsNeedTheAllowFlag() async throws {
        let body = "item_id,timestamp,target_value\n" + (0..<20).map { "A,2026-01-\(String(format: "%02d", $0 + 1)),\($0)\n" }.joined()
        try await withHTTPServer({ router in
            router.get("/data.csv") { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: body))) }
            router.get("/gone.csv") { _, _ in Response(status: .notFound) }
        }) { port in
            var d = try await TestDeployment(functions: [], pipeline: ["ingest"])
            d.environment = ["ALMANAC_INGEST_ALLOW_PRIVATE": "1"]
            try await DatasetStore.create(Dataset(tenant: "default", name: "sales", horizon: 3), in: d.db)
            try await d.startControlPlane()
            let ok = try await arrive(d, url: "http://127.0.0.1:\(port)/data.csv")
            #expect(ok.accepted && ok.report["rows_read"]?.intValue == 20, "\(ok.report)")
            #expect(try await d.count("SELECT count(*) AS n FROM observations") == 20)
            let gone = try await arrive(d, url: "http://127.0.0.1:\(port)/gone.csv")
            #expect(!gone.accepted && gone.report["reason"]?.stringValue?.contains("answered 404") == true, "\(gone.report)")
            await d.shutdown()

            // Without the flag, a loopback URL is refused before any request.
            let strict = try await TestDeployment(functions: [], pipeline: ["ingest"])
            try await DatasetStore.create(Dataset(tenant: "default", name: "sales", horizon: 3), in: strict.db)
            try await strict.startControlPlane()
            let refused = try await arrive(strict, url: "http://127.0.0.1:\(port)/data.csv")
            #expect(!refused.accepted && refused.report["reason"]?.stringValue?.contains("loopback or private") == true, "\(refused.report)")
            #expect(try await strict.count("SELECT count(*) AS n FROM observations") == 0)
            await strict.shutdown()
        }
    }
}

@Suite struct IngestCheckTests {
    /// The whole-file check may only accept what the row check accepts: every clean shape,
    /// its zeros written as real digits, matches the row check's timestamp pattern.
    @Test func cleanTimestampShapesAreAllAcceptedByTheRowCheck() throws {
        // The POSIX pattern's \d as [0-9], for NSRegularExpression.
        let pattern = try NSRegularExpression(pattern: Ingest.timestampPattern.replacingOccurrences(of: #"\d"#, with: "[0-9]"))
        #expect(Ingest.cleanTimestampShapes.count == 33)
        for shape in Ingest.cleanTimestampShapes {
            let sample = String(shape.map { $0 == "0" ? "7" : $0 })
            #expect(pattern.firstMatch(in: sample, range: NSRange(sample.startIndex..., in: sample)) != nil, "\(sample)")
        }
        for bad in ["01/02/2026", "2026-1-2", "2026-01-02 3:04", "20260102", "2026-01-02 00:00:00 UTC"] {
            let shape = String(bad.map { $0.isNumber ? "0" : $0 })
            #expect(!Ingest.cleanTimestampShapes.contains(shape), "\(bad)")
        }
    }
}

/// The scanner that lets a clean file go straight into its batch table.
@Suite struct CleanRowScannerTests {
    let columns = ["item_id", "timestamp", "target_value"]

    func scan(_ text: String, chunk: Int = 1 << 20) -> CleanRowScanner {
        var s = CleanRowScanner(columns: columns)
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            s.feed(Data(bytes[i..<min(i + chunk, bytes.count)]))
            i += chunk
        }
        s.finish()
        return s
    }

    @Test func cleanRowsInAnyChunkingGiveTheSameAnswer() {
        let text = "item_id,timestamp,target_value\r\nA,2026-01-01 00:00:00,1\r\nA,2026-01-01 01:00:00,-2.5e3\r\nB,2026-01-01 00:00:00,0.25\r\nB,2026-01-02 00:00:00,7"
        for chunk in [1, 2, 3, 7, 64, 1 << 20] {
            let s = scan(text, chunk: chunk)
            #expect(s.clean && !s.duplicate && !s.keysMayRepeat, "chunk \(chunk)")
            #expect(s.rows == 4 && s.items.count == 2)
            #expect(s.oneShape && String(decoding: s.earliest, as: UTF8.self) == "2026-01-01 00:00:00"
                    && String(decoding: s.latest, as: UTF8.self) == "2026-01-02 00:00:00")
        }
    }

    @Test func everyCleanShapeIsAcceptedAndOthersAreNot() {
        for shape in Ingest.cleanTimestampShapes {
            let ts = String(shape.map { $0 == "0" ? "1" : $0 })
            #expect(scan("item_id,timestamp,target_value\nA,\(ts),1\n").clean, "\(ts)")
        }
        for row in ["A,01/02/2026,1", "A,2026-01-02 3:04,1", "A,2026-01-02 00:00:00.5,1", "A,2026-01-02 00:00:00 UTC,1",
                    ",2026-01-02,1", "A,2026-01-02,NaN", "A,2026-01-02,inf", "A,2026-01-02,1.", "A,2026-01-02,.5", "A,2026-01-02,+1",
                    "A,2026-01-02, 1", "\"A\",2026-01-02,1", "A,2026-01-02", "A,2026-01-02,1,2", "",
                    String(repeating: "x", count: 201) + ",2026-01-02,1"] {
            #expect(!scan("item_id,timestamp,target_value\n\(row)\nB,2026-01-01,1\n").clean, "\(row)")
        }
    }

    @Test func keyOrderDecidesWhetherTheDatabaseLooksForRepeats() {
        let h = "item_id,timestamp,target_value\n"
        #expect(scan(h + "A,2026-01-01,1\nA,2026-01-01,2\n").duplicate)
        #expect(scan(h + "A,2026-01-02,1\nA,2026-01-01,2\n").keysMayRepeat, "backwards in time")
        #expect(scan(h + "A,2026-01-01,1\nB,2026-01-01,2\nA,2026-01-02,3\n").keysMayRepeat, "item A again")
        let mixed = scan(h + "A,2026-01-01 00:00,1\nA,2026-01-01T00:00,2\n")
        #expect(mixed.keysMayRepeat && !mixed.duplicate && !mixed.oneShape, "same instant, other separator: the database decides")
        #expect(scan(h + "A,2026-01-01 00:00+01:00,1\nA,2026-01-01 00:00+02:00,2\n").keysMayRepeat, "other zones")
        // As long as a zoned one ("+05", zone at 16), but none: the span is left to the database.
        let zoned = scan(h + "A,2026-01-01 00:00+05,1\nB,2026-01-01 00:00:00,2\n")
        #expect(!zoned.oneShape)
    }
}

/// Ingest against a real Postgres, without the function around it: which way each file goes,
/// and what its batch holds.
@Suite(.serialized) struct IngestBatchTests {
    let header = "item_id,timestamp,target_value\n"

    func ingest(_ db: PostgresConnection, _ d: Dataset, _ text: String, version: Int, id: String = UUID().uuidString) async throws -> (Ingest, IngestReport) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("ingest-\(UUID().uuidString).csv")
        try Data(text.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        var ingest = Ingest(dataset: d, id: id, source: file.path)
        let report = try await ingest.stage(file: file, db: db)
        let staged = ingest
        if report.rejection == nil {
            try await db.transaction { tx in try await staged.promote(report: report, version: version, in: tx) }
        } else {
            try await staged.discard(db: db)
        }
        return (ingest, report)
    }

    func count(_ db: PostgresConnection, _ sql: String) async throws -> Int {
        Int(try await db.query(sql).first?.decode("n", as: Int64.self) ?? -1)
    }

    @Test func cleanFilesGoStraightIntoTheirBatchOthersAreCheckedAndBatchesHoldOnlyChanges() async throws {
        let db = try await PostgresConnection.connect(url: try await TestPostgres.shared.freshDatabase())
        let d = Dataset(tenant: "default", name: "s", horizon: 2)
        try await DatasetStore.create(d, in: db)

        let (first, r1) = try await ingest(db, d, header + "A,2026-01-01 00:00:00,1\nA,2026-01-01 01:00:00,2\nB,2026-01-01 00:00:00,3\n", version: 1)
        #expect(first.checked == .straight)
        #expect(r1.rejection == nil && r1.rowsRead == 3 && r1.rowsChanged == 3 && r1.items == 2)
        #expect(r1.firstTimestamp == RFC3339.parse("2026-01-01T00:00:00Z") && r1.lastTimestamp == RFC3339.parse("2026-01-01T01:00:00Z"))

        // Out of order (the database looks for repeats), one value revised, one row new, two
        // unchanged: straight, and the batch keeps only the two that changed.
        let (second, r2) = try await ingest(db, d, header + "B,2026-01-01 00:00:00,3\nA,2026-01-01 02:00:00,6\nA,2026-01-01 01:00:00,5\nA,2026-01-01 00:00:00,1\n", version: 2)
        #expect(second.checked == .straight)
        #expect(r2.rowsRead == 4 && r2.rowsChanged == 2)
        #expect(try await count(db, "SELECT count(*) AS n FROM observation_rows WHERE batch = \(second.batch ?? -1)") == 2)
        #expect(try await count(db, "SELECT count(*) AS n FROM dataset_observations('default', 's')") == 4)
        #expect(try await count(db, "SELECT count(*) AS n FROM observations WHERE item_id = 'A' AND ts = '2026-01-01 01:00:00+00' AND value = 5 AND version = 2") == 1)
        #expect(try await count(db, "SELECT count(*) AS n FROM observations WHERE item_id = 'A' AND ts = '2026-01-01 00:00:00+00' AND version = 1") == 1)

        // The same file again: nothing changed, no batch.
        let (_, again) = try await ingest(db, d, header + "B,2026-01-01 00:00:00,3\nA,2026-01-01 02:00:00,6\n", version: 3)
        #expect(again.rowsChanged == 0)
        #expect(try await count(db, "SELECT count(*) AS n FROM observation_batches") == 2)

        // Quoted fields: the whole-file check. A repeated key in another shape: the row check names its line.
        let (quoted, r3) = try await ingest(db, d, header + "\"C\",2026-01-02,1\n", version: 3)
        #expect(quoted.checked == .wholeFile && r3.rowsChanged == 1)
        var rows = (1...20).map { "D,2026-02-\(String(format: "%02d", $0)),1\n" }.joined()
        rows += "D,2026-02-01 00:00,2\n"
        let (dup, r4) = try await ingest(db, d, header + rows, version: 4)
        #expect(dup.checked == .byRow && r4.rejection == nil && r4.rowsRejected == 1)
        #expect(r4.problems.first?.line == 22 && r4.problems.first?.reason.contains("duplicate of line 2") == true)
        // A value that has the shape but not the range: the cast fails, the row check says why.
        let (big, r5) = try await ingest(db, d, header + (1...20).map { "E,2026-02-\(String(format: "%02d", $0)),1\n" }.joined() + "E,2026-03-01,1e999\n", version: 5)
        #expect(big.checked == .byRow && r5.rowsRejected == 1 && r5.problems.first?.reason.contains("out of range") == true)

        // A killed attempt's batch table is dropped when the ingest is tried again.
        let retried = Ingest(dataset: d, id: "retried", source: "x")
        try await db.runScript("CREATE TABLE \(retried.batchPrefix)999 (LIKE observation_rows)")
        _ = try await ingest(db, d, header + "F,2026-01-01,1\n", version: 6, id: "retried")
        let unattached = try await db.query("""
            SELECT c.relname AS name FROM pg_class c WHERE c.relkind = 'r' AND c.relname ~ '^observation_batch_[0-9a-f]+_[0-9]+$'
              AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
            """)
        #expect(unattached.isEmpty, "batch tables left unattached: \(unattached.map { $0.text("name") ?? "" })")
        #expect(try await count(db, "SELECT count(*) AS n FROM observation_batches") == 6)
        await db.close()
    }

    /// Strict CSV: an unclosed quote in a key column is one bad row with its line number and
    /// cannot swallow the rows after it; a related column's quoted text may span lines;
    /// lines over the dataset's bound and files over its size are refused by name.
    @Test func csvIsReadStrictlyWithLineNumbersAndBounds() async throws {
        let db = try await PostgresConnection.connect(url: try await TestPostgres.shared.freshDatabase())
        let d = Dataset(tenant: "default", name: "strict", horizon: 2, maxErrorRate: 0.5, maxFileBytes: 1 << 20, maxLineBytes: 200)
        try await DatasetStore.create(d, in: db)
        var rows = (1...20).map { "G,2026-01-\(String(format: "%02d", $0)),1\n" }.joined()
        rows += "\"H,2026-02-01,1\n"                                  // line 22: a quote never closed
        rows += "H,2026-02-02,2\nH,2026-02-03,3\n"                    // lines 23-24: still rows of their own
        rows += "I\u{1}J,2026-02-01,1\n"                              // line 25: a control character in the id
        rows += "K," + String(repeating: "9", count: 300) + ",1\n"     // line 26: over max_line_bytes
        rows += "L,2026-02-01,1\n"                                     // line 27
        let (checked, r1) = try await ingest(db, d, header + rows, version: 1)
        #expect(checked.checked == .byRow && r1.rejection == nil)
        #expect(r1.rowsRead == 26 && r1.rowsRejected == 3, "\(r1)")
        #expect(r1.problems.map(\.line) == [22, 25, 26])
        #expect(r1.problems[0].reason.contains("the quoted item_id runs past the end of its line"))
        #expect(r1.problems[1].reason.contains("item_id holds a control character"))
        #expect(r1.problems[2].reason.contains("longer than 200 bytes (the dataset's max_line_bytes)"))
        let ids = try await db.query("SELECT DISTINCT item_id FROM dataset_observations('default', 'strict') ORDER BY 1").compactMap { $0.text("item_id") }
        #expect(ids == ["G", "H", "L"], "no item id holds a comma, a quote or a line break: \(ids)")

        // A related column's quoted text may hold a line break; line numbers count physical lines.
        let related = "item_id,timestamp,target_value,note\n" + "M,2026-01-01,1,\"two\nlines\"\n" + "M,2026-01-02,1,plain\n" + "M,2026-01-02,2,again\n"
        let (_, r2) = try await ingest(db, d, related, version: 2)
        #expect(r2.rowsRead == 3 && r2.rowsRejected == 1 && r2.problems.first?.line == 5 && r2.problems.first?.reason.contains("duplicate of line 4") == true,
                "\(r2)")
        let note = try await db.query("SELECT related->>'note' AS note FROM dataset_observations('default', 'strict') WHERE item_id = 'M' ORDER BY ts LIMIT 1")
        #expect(note.first?.text("note") == "two\nlines")
        let (_, r3) = try await ingest(db, d, related + "M,2026-01-03,1,\"open\n" + "M,2026-01-04,1,x\n", version: 3)
        #expect(r3.problems.last?.line == 6 && r3.problems.last?.reason.contains("that starts on this line is never closed") == true, "\(r3)")

        // A gzip bomb: a small file that inflates past max_file_bytes is refused by name, read a piece at a time.
        let plain = FileManager.default.temporaryDirectory.appendingPathComponent("bomb-\(UUID().uuidString).csv")
        var bomb = Data(header.utf8)
        bomb.append(Data(repeating: 0x41, count: 8 << 20))
        try bomb.write(to: plain)
        let plainPath = plain.path
        _ = try await offThePool { try Subprocess.run("/bin/gzip", ["-f", plainPath]) }
        let gz = URL(fileURLWithPath: plain.path + ".gz")
        defer { try? FileManager.default.removeItem(at: gz) }
        #expect((try FileManager.default.attributesOfItem(atPath: gz.path)[.size] as? Int ?? 0) < 100_000)
        var bombIngest = Ingest(dataset: d, id: UUID().uuidString, source: gz.path)
        let r4 = try await bombIngest.stage(file: gz, db: db)
        #expect(r4.rejection?.contains("more than 1048576 bytes once decompressed; the dataset's max_file_bytes") == true, "\(r4.rejection ?? "accepted")")
        try await bombIngest.discard(db: db)
        await db.close()
    }

    /// Whatever the chunking, the strict reader writes the same records.
    @Test func strictCSVGivesTheSameRecordsInAnyChunking() {
        let text = "item_id,timestamp,target_value,note\n" + "A,2026-01-01,1,\"x\ny\"\n\r\n" + "\"B\"\"q\",2026-01-02,2,\n" + "\"C,2026,3\n" + "D,2026,4,\"z"
        let bytes = Array(text.utf8)
        func records(chunk: Int) -> String {
            var csv = StrictCSV(columns: ["item_id", "timestamp", "target_value", "note"], maxLineBytes: 1000)
            var out = Data()
            var i = 0
            while i < bytes.count {
                csv.feed(Data(bytes[i..<min(bytes.count, i + chunk)]), into: &out)
                i += chunk
            }
            csv.finish(into: &out)
            return String(decoding: out, as: UTF8.self)
        }
        let whole = records(chunk: bytes.count)
        #expect(whole == """
            2,"A","2026-01-01","1","x
            y",
            5,"B""q","2026-01-02","2",,
            6,"C,2026,3",,,,"the quoted item_id runs past the end of its line (is a closing quote missing?)"
            7,"D","2026","4","z","the quoted note that starts on this line is never closed"

            """)
        for n in [1, 2, 3, 7, 16] { #expect(records(chunk: n) == whole, "chunks of \(n)") }
    }
}
