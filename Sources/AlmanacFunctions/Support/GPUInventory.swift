import Foundation

/// The GPUs instances may be given.
public struct GPUInventory: Sendable, Equatable {
    /// Slot names, each a `CUDA_VISIBLE_DEVICES` value (`0`, `1`, or a GPU UUID).
    public var slots: [String]

    /// Makes an inventory.
    public init(slots: [String]) { self.slots = slots }

    /// `ALMANAC_GPUS` (comma-separated slots; empty or `none` for no GPU) when set,
    /// otherwise the GPUs `nvidia-smi` lists, otherwise none.
    public static func detect(env: [String: String] = ProcessInfo.processInfo.environment) -> GPUInventory {
        if let configured = env["ALMANAC_GPUS"] {
            return GPUInventory(slots: parse(configured))
        }
        guard let result = try? Subprocess.run("nvidia-smi", ["--query-gpu=index", "--format=csv,noheader"]), result.status == 0 else {
            return GPUInventory(slots: [])
        }
        return GPUInventory(slots: parse(result.output.replacingOccurrences(of: "\n", with: ",")))
    }

    /// Slot names from a comma-separated list (`none` or empty: no GPU).
    static func parse(_ text: String) -> [String] {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if t.isEmpty || t == "none" { return [] }
        return t.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
