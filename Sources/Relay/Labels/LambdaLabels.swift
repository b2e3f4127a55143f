/// One label the relay adds to every profile it relays (PYROSCOPE_LAMBDA_LABELS).
public struct LambdaLabel: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    public var description: String { "\(name)=\(value)" }
}

/// The labels the relay adds to every upload, in the order they are added: the Lambda
/// context (function, version, region, architecture, memory) that no profiler knows.
/// Empty (the default): uploads pass exactly as today. A label a client already set is
/// never overridden.
public struct LambdaLabels: Sendable, Equatable {
    public private(set) var labels: [LambdaLabel]

    public static let none = LambdaLabels(sanitizing: [])

    /// Names and values made safe for Pyroscope (see `LabelSanitizer`); a label whose
    /// value is empty once sanitized is left out (Pyroscope treats empty as absent), and
    /// of two labels with one name only the first is kept (a duplicate name fails the
    /// whole push request).
    public init(sanitizing labels: [LambdaLabel]) {
        var seen = Set<String>()
        var kept: [LambdaLabel] = []
        for label in labels {
            let name = LabelSanitizer.name(label.name)
            let value = LabelSanitizer.value(label.value)
            guard !name.isEmpty, !value.isEmpty, seen.insert(name).inserted else { continue }
            kept.append(LambdaLabel(name: name, value: value))
        }
        self.labels = kept
    }

    public var isEmpty: Bool { labels.isEmpty }
}

/// Pyroscope's rules for labels, applied to what the relay adds (never to what clients send).
public enum LabelSanitizer {
    /// Pyroscope (as Prometheus) refuses a longer value with 400: the whole upload is lost.
    public static let maxValueBytes = 2048

    /// `[a-zA-Z_][a-zA-Z0-9_]*`: anything else becomes `_` (Pyroscope turns `.` into `_` the
    /// same way), and a leading digit gets a `_` before it.
    public static func name(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "_": out.append(scalar)
            default: out.append("_")
            }
        }
        if let first = out.first, ("0"..."9").contains(first) { out.insert("_", at: out.startIndex) }
        return String(out)
    }

    /// Values must be UTF-8 (Swift strings are) and at most 2048 bytes. The legacy ingest
    /// key `app{k=v,...}` ends a value at `,` or `}` and trims white space, so those, `=`,
    /// `{`, quotes, backslashes, white space and control characters become `_`, in both
    /// shapes alike: one function's label reads the same whichever API its profiler uses.
    public static func value(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var bytes = 0
        for scalar in text.unicodeScalars {
            let replaced: Unicode.Scalar =
                switch scalar {
                case ",", "=", "{", "}", "\"", "'", "\\", "`": "_"
                case _ where scalar.value < 0x21 || scalar.value == 0x7F || scalar.properties.isWhitespace: "_"
                default: scalar
                }
            bytes += UTF8.width(replaced)
            if bytes > maxValueBytes { break }
            out.append(replaced)
        }
        return String(out)
    }
}
