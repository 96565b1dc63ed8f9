import AlmanacPipeline
import AlmanacControlPlane
import AlmanacCore
import AlmanacFunctions
import Foundation

/// The body of `POST /v1/datasets`: `name` and `horizon`, and the settings the
/// `datasets create` command takes, each checked for its type; an unknown member is an error.
enum DatasetRequest {
    static let members: Set<String> = ["name", "horizon", "frequency", "quantiles", "models", "retrain_wape", "retrain_factor",
                                       "max_error_rate", "max_file_bytes", "max_line_bytes"]

    /// The dataset the body describes.
    /// - Throws: `EventIngress.Problem` (400) naming the member that is wrong.
    static func dataset(from body: JSONValue, tenant: String) throws -> Dataset {
        guard let o = body.objectValue else { throw ForecastAPI.bad("the body must be a JSON object with at least name and horizon") }
        if let unknown = o.keys.sorted().first(where: { !members.contains($0) }) {
            throw ForecastAPI.bad("unknown member \(EventLimits.quoted(unknown)); the members are \(members.sorted().joined(separator: ", "))")
        }
        guard let name = o["name"]?.stringValue else { throw ForecastAPI.bad("name is required and must be a string") }
        let horizon = try whole(o["horizon"], "horizon", required: true) ?? 0
        var d = Dataset(tenant: tenant, name: name, horizon: horizon)
        if let f = o["frequency"], f != .null {
            guard let text = f.stringValue else { throw ForecastAPI.bad("frequency must be a string") }
            d.frequency = text
        }
        if let q = o["quantiles"] {
            guard let levels = q.arrayValue, levels.allSatisfy({ $0.numberValue != nil }) else { throw ForecastAPI.bad("quantiles must be an array of numbers") }
            d.quantiles = levels.compactMap(\.numberValue)
        }
        if let m = o["models"] {
            guard let text = m.stringValue else { throw ForecastAPI.bad("models must be a string") }
            d.models = text
        }
        if let w = o["retrain_wape"], w != .null {
            guard let n = w.numberValue else { throw ForecastAPI.bad("retrain_wape must be a number") }
            d.retrainWAPE = n
        }
        if let f = o["retrain_factor"] {
            guard let n = f.numberValue else { throw ForecastAPI.bad("retrain_factor must be a number") }
            d.retrainFactor = n
        }
        if let r = o["max_error_rate"] {
            guard let n = r.numberValue else { throw ForecastAPI.bad("max_error_rate must be a number") }
            d.maxErrorRate = n
        }
        if let n = try whole(o["max_file_bytes"], "max_file_bytes") { d.maxFileBytes = Int64(n) }
        if let n = try whole(o["max_line_bytes"], "max_line_bytes") { d.maxLineBytes = n }
        return d
    }

    static func whole(_ value: JSONValue?, _ name: String, required: Bool = false) throws -> Int? {
        guard let value else {
            if required { throw ForecastAPI.bad("\(name) is required and must be a whole number") }
            return nil
        }
        guard let n = value.numberValue, n.rounded() == n, abs(n) < 9e15 else { throw ForecastAPI.bad("\(name) must be a whole number") }
        return Int(n)
    }

}
