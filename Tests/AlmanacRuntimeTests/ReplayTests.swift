import AlmanacCore
import AlmanacPostgres
@testable import AlmanacFunctions
@testable import AlmanacControlPlane
import Foundation
import Testing

@Suite struct ReplayTests {
    @Test func archiveSelectsByTimeTypeSubjectAndCausationChain() async throws {
        let d = try await TestDeployment(functions: [TestFunction(name: "unused", subscribe: "none")])
        let t0 = Date(timeIntervalSince1970: 1_795_000_000)
        func event(_ id: String, _ type: String, _ subject: String, minutes: Double, cause: String? = nil) -> CloudEvent {
            var e = CloudEvent(id: id, source: "test", type: type, subject: subject, time: t0.addingTimeInterval(minutes * 60), json: ["id": .string(id)])
            e.causationID = cause
            e.correlationID = cause == nil ? nil : "a"
            return e
        }
        let events = [
            event("a", "x.start", "sales", minutes: 0),
            event("b", "x.middle", "sales", minutes: 1, cause: "a"),
            event("c", "x.end", "sales", minutes: 2, cause: "b"),
            event("d", "x.start", "stock", minutes: 3),
            event("e", "x.middle", "stock", minutes: 4, cause: "d"),
        ]
        let router = EventRouter(manifests: [], schemas: EventSchemaRegistry(), database: d.db, producer: d.producer,
                                 source: try .init(configuration: d.cluster.configuration, groupID: "g", topics: [Outbox.busTopic], assignment: .all),
                                 logger: d.logger)
        try await router.archive(events)
        try await router.archive(events)  // archiving twice keeps one copy
        func ids(_ since: Date? = nil, _ until: Date? = nil, type: String? = nil, subject: String? = nil, causation: String? = nil) async throws -> [String] {
            try await EventArchive.select(in: d.db, .init(since: since, until: until, clock: .eventTime, type: type, subject: subject,
                                                          causation: causation)).map(\.id)
        }
        #expect(try await ids() == ["a", "b", "c", "d", "e"])
        #expect(try await ids(type: "x.start") == ["a", "d"])
        #expect(try await ids(subject: "stock") == ["d", "e"])
        #expect(try await ids(t0.addingTimeInterval(60), t0.addingTimeInterval(180)) == ["b", "c"])
        #expect(try await ids(causation: "a") == ["a", "b", "c"])
        #expect(try await ids(causation: "b") == ["b", "c"])
        #expect(try await ids(type: "x.middle", subject: "sales") == ["b"])
        // By archive time: every event was archived just now, whatever its own time says.
        let archived = try await EventArchive.select(in: d.db, .init(since: Date().addingTimeInterval(-600), clock: .archived)).map(\.id)
        #expect(archived.sorted() == ["a", "b", "c", "d", "e"])
        #expect(try await EventArchive.select(in: d.db, .init(until: Date().addingTimeInterval(-600), clock: .archived)).isEmpty)
        // Pages of two walk all five events once each, in archive order, and then stop.
        var paged: [String] = []
        var cursor: EventArchive.Cursor?
        var pages = 0
        repeat {
            let (events, next) = try await EventArchive.page(in: d.db, .init(), after: cursor, limit: 2)
            paged += events.map(\.id)
            cursor = next
            pages += 1
        } while cursor != nil && pages < 10
        #expect(paged.sorted() == ["a", "b", "c", "d", "e"])
        #expect(Set(paged).count == 5)
        #expect(pages == 3)
        await d.shutdown()
    }
}
