import AlmanacPipeline
import AlmanacFunctions
import Foundation

// The export function: a forecast → latest_forecasts, a CSV and a chart (see ExportFunction).
let env = ProcessInfo.processInfo.environment
await FunctionMain.run(TypedHandler(ExportFunction(folder: env["ALMANAC_EXPORT_DIR"] ?? AlmanacPaths.discover(env: env).export)))
