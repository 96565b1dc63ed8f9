import AlmanacPipeline
import AlmanacFunctions
import Foundation

// The ingest function: data arrivals → dataset versions (see IngestFunction).
let env = ProcessInfo.processInfo.environment
let paths = AlmanacPaths.discover(env: env)
do {
    let drop = try DropFolder(path: env["ALMANAC_DROP_DIR"] ?? paths.drop)
    await FunctionMain.run(TypedHandler(IngestFunction(drop: drop)))
} catch {
    FileHandle.standardError.write(Data("error: cannot use the drop folder: \(error)\n".utf8))
    exit(1)
}
