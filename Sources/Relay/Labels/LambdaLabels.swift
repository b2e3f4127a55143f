/// One label the relay adds to every profile it relays (PYROSCOPE_LAMBDA_LABELS).
public struct LambdaLabel: Sendable, Hashable, CustomStringConvertible {
    /// The label's name in Pyroscope's spelling (`faas_name`): in `/ingest` names and push series.
    public var name: String
    public var value: String
    /// The OpenTelemetry resource attribute it is in an OTLP profile (`faas.name`); Pyroscope
    /// turns `.` into `_`, so either way the function's profiles carry the same label.
    public var attribute: ResourceAttribute

    /// A resource attribute the relay adds to OTLP profiles.
    public struct ResourceAttribute: Sendable, Hashable {
        public var key: String
        /// An `int_value` (OpenTelemetry's type for `faas.max_memory`) when the value is an
        /// integer; otherwise a `string_value`.
        public var isInteger: Bool

        public init(key: String, isInteger: Bool = false) {
            self.key = key
            self.isInteger = isInteger
        }
    }

    /// `attribute` nil: the attribute key is the name.
    public init(name: String, value: String, attribute: ResourceAttribute? = nil) {
        self.name = name
        self.value = value
        self.attribute = attribute ?? ResourceAttribute(key: name)
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
            var attribute = label.attribute
            if attribute.key == label.name { attribute.key = name }
            if attribute.isInteger, Int64(value) == nil { attribute.isInteger = false }
            kept.append(LambdaLabel(name: name, value: value, attribute: attribute))
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
