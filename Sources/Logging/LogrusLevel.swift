import Logging

/// The seven logrus levels, numbered as logrus numbers them so that `Comparable`
/// follows logrus: an entry is emitted when `entry level <= logger level`.
public enum LogrusLevel: Int, Sendable, Comparable, CaseIterable {
    case panic = 0, fatal, error, warning, info, debug, trace

    /// Go's `logrus.ParseLevel`: `strings.ToLower` (rune-wise simple lowercasing)
    /// and an exact match; no trimming, so `" info"` and `"err"` fail.
    ///
    /// Only runes whose Go lowercase is ASCII can ever match a level name: `A`–`Z`,
    /// U+0130 (İ → `i`) and U+212A (Kelvin sign → `k`). Every other non-ASCII rune
    /// lowercases to non-ASCII, so the match fails whatever its mapping is; that is why
    /// no general Unicode table is needed here (Swift's `lowercased()` maps U+0130 to
    /// `i̇`, two scalars, which Go does not).
    public init?(parsing text: String) {
        var lowered = ""
        lowered.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x41...0x5A: lowered.unicodeScalars.append(Unicode.Scalar(scalar.value + 0x20)!)
            case 0x130: lowered.append("i")
            case 0x212A: lowered.append("k")
            case 0...0x7F: lowered.unicodeScalars.append(scalar)
            default: return nil
            }
        }
        switch lowered {
        case "panic": self = .panic
        case "fatal": self = .fatal
        case "error": self = .error
        case "warn", "warning": self = .warning
        case "info": self = .info
        case "debug": self = .debug
        case "trace": self = .trace
        default: return nil
        }
    }

    /// logrus `Level.String()`: `warning`, never `warn`.
    public var name: String {
        switch self {
        case .panic: "panic"
        case .fatal: "fatal"
        case .error: "error"
        case .warning: "warning"
        case .info: "info"
        case .debug: "debug"
        case .trace: "trace"
        }
    }

    /// The swift-log threshold that lets through what this logrus level lets through.
    /// swift-log has no panic/fatal, so both become `.critical`.
    public var swiftLogLevel: Logger.Level {
        switch self {
        case .panic, .fatal: .critical
        case .error: .error
        case .warning: .warning
        case .info: .info
        case .debug: .debug
        case .trace: .trace
        }
    }

    /// The logrus level a swift-log entry is printed as. `.notice` has no logrus
    /// counterpart and prints as `info`; `.critical` prints as `fatal` (the handler
    /// never exits the process, unlike logrus' Fatal).
    public init(_ level: Logger.Level) {
        switch level {
        case .trace: self = .trace
        case .debug: self = .debug
        case .info, .notice: self = .info
        case .warning: self = .warning
        case .error: self = .error
        case .critical: self = .fatal
        }
    }

    public static func < (lhs: LogrusLevel, rhs: LogrusLevel) -> Bool {
        lhs.rawValue < rhs.rawValue
    }
}
