import Foundation

/// Where Almanac finds its own files: the project root (with `functions/`, `events/` and
/// `infra/`), the folder of built executables, and the state folder `up` keeps.
public struct AlmanacPaths: Sendable {
    /// The project root.
    public var root: String
    /// The folder holding the `almanac` and function executables.
    public var binaries: String

    /// The function manifests' folder.
    public var functions: String { "\(root)/functions" }
    /// The event schemas' folder.
    public var events: String { "\(root)/events" }
    /// The web console's files (HTML, CSS, JavaScript modules).
    public var console: String { "\(root)/console" }
    /// The migrations' folder.
    public var migrations: String { "\(root)/infra/migrations" }
    /// The drop folder: a file at `drop/<tenant>/<dataset>/<file>` is a data arrival for that tenant's dataset.
    public var drop: String { "\(root)/.almanac/drop" }
    /// The export folder: forecasts as CSV and charts, per tenant and dataset.
    public var export: String { "\(root)/.almanac/export" }

    /// Makes paths.
    public init(root: String, binaries: String) {
        self.root = root
        self.binaries = binaries
    }

    /// Finds the paths: `ALMANAC_ROOT` and `ALMANAC_BIN` when set; otherwise the root is the
    /// nearest folder above the working directory (or the executable) holding
    /// `infra/migrations`, and the binaries are beside the running executable.
    public static func discover(env: [String: String] = ProcessInfo.processInfo.environment) -> AlmanacPaths {
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
        let exeDir = exe.deletingLastPathComponent().path
        let bin = env["ALMANAC_BIN"] ?? exeDir
        if let root = env["ALMANAC_ROOT"] { return AlmanacPaths(root: root, binaries: bin) }
        for start in [FileManager.default.currentDirectoryPath, exeDir] {
            var dir = URL(fileURLWithPath: start)
            while dir.path != "/" {
                if FileManager.default.fileExists(atPath: dir.appendingPathComponent("infra/migrations").path) {
                    return AlmanacPaths(root: dir.path, binaries: bin)
                }
                dir.deleteLastPathComponent()
            }
        }
        return AlmanacPaths(root: FileManager.default.currentDirectoryPath, binaries: bin)
    }
}
