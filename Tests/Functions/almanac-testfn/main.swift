import AlmanacCore
import AlmanacPostgres
import AlmanacFunctions
import Foundation

// A small function whose behaviour its manifest's environment chooses, to prove the
// runtime with any handler. Every mode that succeeds stages one row in test_effects
// (function, event id, data.n, CUDA_VISIBLE_DEVICES, instance, handler start time) and,
// when TESTFN_EMIT is set, emits that type with the same data.
//   TESTFN_MODE=record            succeed
//   TESTFN_MODE=fail              throw every time
//   TESTFN_MODE=reject            throw a non-retriable error
//   TESTFN_MODE=sleep             sleep TESTFN_SLEEP_MS first (deadline tests)
//   TESTFN_MODE=fail_unless_flag  throw until test_flags holds a row named after the function
//   TESTFN_MODE=abort_on_poison   abort the whole process on an event whose data has "poison": true
//   TESTFN_MODE=stubborn          block TESTFN_SLEEP_MS ignoring cancellation, then write straight to
//                                 test_direct (outside the staged effects) with the attempt number
struct TestFunction: FunctionHandler {
    let env = ProcessInfo.processInfo.environment

    func handle(_ event: CloudEvent, context: FunctionContext) async throws {
        let started = Date()
        let name = context.manifest.name
        switch env["TESTFN_MODE"] ?? "record" {
        case "fail":
            throw FunctionError("test function told to fail (TESTFN_MODE=fail) on \(event.id)")
        case "reject":
            throw FunctionError("test function rejects \(event.id) (TESTFN_MODE=reject)", retriable: false)
        case "sleep":
            try await Task.sleep(for: .milliseconds(Int(env["TESTFN_SLEEP_MS"] ?? "1000") ?? 1000))
        case "stubborn":
            usleep(UInt32((Int(env["TESTFN_SLEEP_MS"] ?? "1000") ?? 1000) * 1000))  // deaf to cancellation
            try await context.database.exec("INSERT INTO test_direct (event_id, attempt) VALUES ($1, $2)", [event.id, context.attempt])
        case "abort_on_poison":
            if event.jsonData?["poison"]?.boolValue == true { abort() }
        case "fail_unless_flag":
            let flag = try await context.database.query("SELECT 1 FROM test_flags WHERE name = $1", [name])
            if flag.isEmpty { throw FunctionError("no flag for \(name) yet") }
        default:
            break
        }
        let n = event.jsonData?["n"]?.intValue ?? -1
        let gpu = env["CUDA_VISIBLE_DEVICES"] ?? ""
        let instance = env["ALMANAC_INSTANCE_ID"] ?? ""
        context.write { tx in
            try await tx.exec("INSERT INTO test_effects (function, event_id, n, gpu, instance, started_at) VALUES ($1, $2, $3, $4, $5, $6)",
                              [name, event.id, n, gpu, instance, started])
        }
        if let next = env["TESTFN_EMIT"], !next.isEmpty {
            context.emit(type: next, json: event.jsonData ?? ["n": .number(Double(n))])
        }
    }
}

await FunctionMain.run(TestFunction())
