import Foundation

/// Names that become folder names (and URL path segments): tenants and datasets. A slug is
/// 1 to `maxLength` ASCII letters, digits, `-`, `_` or `.`, and does not start with `.`, so
/// it can never name a parent folder, a hidden file or a path with more than one part.
public enum Slug {
    /// The longest tenant name.
    public static let maxTenantLength = 63
    /// The longest dataset name.
    public static let maxDatasetLength = 100

    /// Whether `name` is a slug of at most `maxLength` characters.
    public static func isValid(_ name: String, maxLength: Int) -> Bool {
        guard !name.isEmpty, name.utf8.count <= maxLength, !name.hasPrefix(".") else { return false }
        return name.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F || b == 0x2E
        }
    }

    /// Why `name` is not a valid name for `what` (`tenant`, `dataset`), or nil when it is.
    public static func problem(_ name: String, what: String, maxLength: Int) -> String? {
        isValid(name, maxLength: maxLength) ? nil
            : "\(what) name \(EventLimits.quoted(name)) is invalid: use 1–\(maxLength) letters, digits, '-', '_' or '.', not starting with '.'"
    }

    /// Checks `name`.
    /// - Throws: `InvalidName` saying what is wrong with it.
    public static func check(_ name: String, what: String, maxLength: Int) throws {
        if let message = problem(name, what: what, maxLength: maxLength) { throw InvalidName(message: message) }
    }
}

/// A tenant or dataset name that is not a `Slug`.
public struct InvalidName: Error, CustomStringConvertible, Sendable {
    /// What is wrong, quoting the name.
    public var message: String
    /// The message.
    public var description: String { message }
}
