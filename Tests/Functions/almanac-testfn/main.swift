import AlmanacCore
import AlmanacPostgres
import AlmanacRuntime
import Foundation

// A small function whose behaviour its manifest's environment chooses, to prove the
// runtime with any handler:
//   TESTFN_MODE=record  writes (function, event id, data.n, CUDA_VISIBLE_DEVICES) to test_effects
//                       and emits TESTFN_EMIT (when set) carrying the same data
//   TESTFN_MODE=fail    throws every time
//   TESTFN_MODE=sleep   sleeps TESTFN_SLEEP_MS, then records
//   TESTFN_MODE=badschema emits an event whose data is not an object
struct TestFunction: FunctionHandler {
    let env = ProcessInfo.processInfo.environment

    func handle(_ event: CloudEvent, context: FunctionContext) async throws {
        let mode = env["TESTFN_MODE"] ?? "record"
        switch mode {
        case "fail":
            throw FunctionError("test function told to fail (TESTFN_MODE=fail) on \(event.id)")
        case "sleep":
            let ms = Int(env["TESTFN_SLEEP_MS"] ?? "1000") ?? 1000
            try await Task.sleep(for: .milliseconds(ms))
        default:
            break
        }
        let name = context.manifest.name
        let n = event.jsonData?["n"]?.intValue ?? -1
        let gpu = env["CUDA_VISIBLE_DEVICES"] ?? ""
        let started = env["TESTFN_STARTED_AT"] ?? ""
        _ = started
        context.write { tx in
            try await tx.exec("INSERT INTO test_effects (function, event_id, n, gpu, handled_at) VALUES ($1, $2, $3, $4, clock_timestamp())",
                              [name, event.id, n, gpu])
        }
        if let next = env["TESTFN_EMIT"], !next.isEmpty {
            context.emit(type: next, json: event.jsonData ?? ["n": .number(Double(n))])
        }
    }
}

await FunctionMain.run(TestFunction())
