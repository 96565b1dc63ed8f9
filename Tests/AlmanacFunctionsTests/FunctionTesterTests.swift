import AlmanacCore
import AlmanacFunctions
import AlmanacFunctionsTesting
import Foundation
import Testing

/// The testing library as a function author uses it: a handler run on an event, its staged
/// effects seen without Kafka or Postgres.
@Suite struct FunctionTesterTests {
    /// Greets the person an event names; a timer reminds later; a row is written.
    struct Greeter: FunctionHandler {
        func handle(_ event: CloudEvent, context: FunctionContext) async throws {
            guard let name = event.jsonData?["name"]?.stringValue else {
                throw FunctionError("data.name is missing", retriable: false)
            }
            context.write("greeting for \(name)") { _ in }
            context.emit(type: "greeting.sent", json: ["to": .string(name)])
            context.emit(type: "greeting.reminder", json: ["to": .string(name)], at: Date(timeIntervalSince1970: 2_000_000_000))
        }
    }

    func arrival(_ data: JSONValue) -> CloudEvent {
        var e = CloudEvent(id: "e-1", source: "test", type: "person.arrived", subject: "desk-4", json: data)
        e.tenant = "acme"
        e.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        return e
    }

    @Test func aHandlersStagedWritesEventsAndTimersAreSeen() async throws {
        let staged = try await FunctionTester(function: "greeter").run(Greeter(), on: arrival(["name": "Ada"]))
        #expect(staged.writeLabels == ["greeting for Ada"])
        #expect(staged.events.map(\.type) == ["greeting.sent"])
        let sent = try #require(staged.events.first)
        #expect(sent.jsonData?["to"]?.stringValue == "Ada")
        // Caused by the event it handled: same tenant, trace and subject; this function as source.
        #expect(sent.tenant == "acme" && sent.causationID == "e-1" && sent.correlationID == "e-1")
        #expect(sent.subject == "desk-4" && sent.source == "almanac/greeter")
        #expect(sent.traceparent == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        #expect(staged.scheduled.map(\.event.type) == ["greeting.reminder"])
        #expect(staged.scheduled.first?.date == Date(timeIntervalSince1970: 2_000_000_000))
    }

    @Test func progressIsReportedNotStaged() async throws {
        let staged = try await FunctionTester(function: "counter").run(ClosureFunctionHandler { _, context in
            for done in 1...3 { context.progress(["items_done": .number(Double(done)), "items_total": 3]) }
        }, on: arrival([:]))
        #expect(staged.progress.map { $0["items_done"] } == [1, 2, 3])
        #expect(staged.writes.isEmpty && staged.events.isEmpty, "progress is not an effect")
    }

    @Test func aWriteWithoutALabelIsKnownByWhereItWasStaged() async throws {
        let staged = try await FunctionTester(function: "w").run(ClosureFunctionHandler { _, context in
            context.write { _ in }
        }, on: arrival([:]))
        #expect(staged.writeLabels.count == 1)
        #expect(staged.writeLabels[0].hasPrefix("AlmanacFunctionsTests/FunctionTesterTests.swift:"))
    }

    @Test func whatTheHandlerThrowsReachesTheTest() async throws {
        await #expect(throws: FunctionError.self) {
            _ = try await FunctionTester(function: "greeter").run(Greeter(), on: arrival(["nobody": true]))
        }
    }

    @Test func readingTheDatabaseWithoutOneSaysWhatToGive() async throws {
        let error = await #expect(throws: FunctionError.self) {
            _ = try await FunctionTester(function: "reader").run(ClosureFunctionHandler { _, context in
                _ = try context.database
            }, on: arrival([:]))
        }
        #expect(error?.message.contains("give FunctionTester a connection") == true)
        #expect(error?.isRetriable == false)
    }

    @Test func deliverRetriesAsTheManifestSaysThenCommits() async throws {
        let calls = Counter()
        let flaky = ClosureFunctionHandler { _, context in
            if calls.next() < 2 { throw FunctionError("receiver answered 503") }
            context.emit(type: "done", json: [:])
        }
        let manifest = FunctionManifest(name: "flaky", run: .executable("flaky"), subscriptions: [],
                                        retries: .init(maxAttempts: 3, initialBackoff: 1, maxBackoff: 60, multiplier: 2, jitter: 0))
        guard case .committed(let staged, let attempts, let failures) = await FunctionTester(manifest: manifest).deliver(arrival([:]), to: flaky) else {
            Issue.record("the third attempt succeeds")
            return
        }
        #expect(attempts == 3 && failures == ["receiver answered 503", "receiver answered 503"])
        #expect(staged.events.map(\.type) == ["done"])
    }

    @Test func deliverDeadLettersWhatWillNotGetBetter() async throws {
        let outcome = await FunctionTester(function: "greeter").deliver(arrival(["nobody": true]), to: Greeter())
        guard case .deadLettered(let code, let reason, let attempts, _) = outcome else {
            Issue.record("a missing name is not retried")
            return
        }
        #expect(code == "handler_failed" && attempts == 1)
        #expect(reason == "greeter gave up after 1 attempt: data.name is missing")
    }
}

/// Counts calls from any task.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    /// The count before this call.
    func next() -> Int { lock.withLock { defer { value += 1 }; return value } }
}
