import AlmanacCore
@testable import AlmanacFunctions
import Foundation
import Testing

/// What an exec program hands back as writes: parsed into bound statements, and refused with
/// the entry and the reason when it is malformed or names another tenant.
@Suite struct ExecWriteTests {
    func parse(_ text: String, tenant: String = "acme") throws -> ExecWrite {
        try ExecWrite(try JSONValue(parsing: Data(text.utf8)), index: 2, tenant: tenant)
    }

    func texts(_ w: ExecWrite) throws -> [(String, [String?])] {
        try w.statements().map { ($0.sql, $0.parameters.map { $0.map { "\($0)" } }) }
    }

    @Test func anInsertBecomesOneBoundStatementPerRow() throws {
        let w = try parse(#"{"insert": "predictor_holdouts", "on_conflict": "nothing", "rows": [{"predictor_id": "pd-1", "item_id": "A \"x\"", "actual": [3, 4.5], "quantiles": [[1, 2], [3, null]], "members": ["deep", "a\\b"]}]}"#)
        let statements = try w.statements()
        #expect(statements.count == 1)
        #expect(statements[0].sql == #"INSERT INTO "predictor_holdouts" ("actual", "item_id", "members", "predictor_id", "quantiles") VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"#)
        let values = statements[0].parameters.map { $0.map { "\($0)" } }
        #expect(values == ["{3,4.5}", "A \"x\"", #"{"deep","a\\b"}"#, "pd-1", "{{1,2},{3,NULL}}"])
    }

    @Test func objectsAreJSONAndBase64IsBytes() throws {
        let w = try parse(#"{"insert": "predictor_models", "rows": [{"model": {"$base64": "AG5weg=="}, "metrics": {"WAPE": 0.5}, "n": 3, "ok": true, "gone": null}]}"#)
        let parameters = try w.statements()[0].parameters
        // Columns sorted: gone, metrics, model, n, ok.
        #expect(parameters[0] == nil)
        #expect(parameters[1] as? String == #"{"WAPE":0.5}"#)
        #expect(parameters[2] as? Data == Data([0x00, 0x6e, 0x70, 0x7a]))
        #expect(parameters[3] as? Int == 3)
        #expect(parameters[4] as? Bool == true)
        #expect(try w.statements()[0].sql.hasSuffix("($1, $2, $3, $4, $5)"), "no ON CONFLICT unless asked")
    }

    @Test func aDeleteNeedsConditionsAndBindsThem() throws {
        let w = try parse(#"{"delete": "deep_training", "where": {"tenant": "acme", "event_id": "e1"}}"#)
        #expect(try texts(w).map(\.0) == [#"DELETE FROM "deep_training" WHERE "event_id" = $1 AND "tenant" = $2"#])
        #expect(try texts(w)[0].1 == ["e1", "acme"])
        let everything = #expect(throws: FunctionError.self) { try parse(#"{"delete": "deep_training", "where": {}}"#) }
        #expect(everything?.message.contains("a delete of every row is refused") == true)
    }

    @Test(arguments: [
        (#"{"insert": "predictors; DROP TABLE x", "rows": [{"a": 1}]}"#, "answer write[2].insert: \"predictors; DROP TABLE x\" is not a table or column name"),
        (#"{"insert": "t", "rows": [{"a\" = 1 --": 1}]}"#, "answer write[2].rows[0]: "),
        (#"{"insert": "Predictors", "rows": [{"a": 1}]}"#, "is not a table or column name"),
        (#"{"insert": "t", "rows": []}"#, "answer write[2].rows must be a non-empty array of objects"),
        (#"{"insert": "t", "rows": [{"tenant": "globex", "a": 1}]}"#, "tenant \"globex\" is not the event's tenant \"acme\""),
        (#"{"delete": "t", "where": {"tenant": "globex"}}"#, "answer write[2].where: tenant \"globex\" is not the event's tenant"),
        (#"{"insert": "t", "rows": [{"a": 1}], "on_conflict": "update"}"#, "on_conflict must be \"nothing\""),
        (#"{"update": "t"}"#, "must have \"insert\" (with \"rows\") or \"delete\" (with \"where\")"),
        (#"[1]"#, "answer write[2] must be an object"),
        (#"{"insert": "t", "rows": [{"m": {"$base64": "!!"}}]}"#, "\"$base64\" must be base64 text"),
        (#"{"insert": "t", "rows": [{"a": [{"x": 1}]}]}"#, "an array may not hold objects"),
    ])
    func malformedWritesAreRefusedNamingTheEntry(input: String, message: String) throws {
        let error = #expect(throws: FunctionError.self) { _ = try texts(try parse(input)) }
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "no error")")
        #expect(error?.isRetriable == false)
    }
}
