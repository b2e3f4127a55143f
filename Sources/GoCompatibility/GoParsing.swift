/// Exact re-implementations of the Go standard library parsers the Go extension used for
/// its settings, so every value a user configured keeps its meaning.
/// Spec and vectors: shared/reference/log-and-config-formats.md §6–7.
public enum GoParsing {
    /// `strconv.ParseBool`: exact, case-sensitive, no trimming.
    public static func parseBool(_ text: String) -> Bool? {
        switch text {
        case "1", "t", "T", "true", "TRUE", "True": true
        case "0", "f", "F", "false", "FALSE", "False": false
        default: nil
        }
    }

    /// `strconv.Atoi` on a 64-bit platform: optional sign, ASCII digits, nothing else.
    public static func parseInt(_ text: String) -> Int? {
        var bytes = Substring(text).utf8[...]
        var negative = false
        if let first = bytes.first, first == UInt8(ascii: "+") || first == UInt8(ascii: "-") {
            negative = first == UInt8(ascii: "-")
            bytes = bytes.dropFirst()
        }
        guard !bytes.isEmpty else { return nil }
        var magnitude: UInt64 = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (shifted, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = shifted.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            magnitude = sum
        }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
            return magnitude == UInt64(Int64.max) + 1 ? Int.min : -Int(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { return nil }
        return Int(magnitude)
    }

    /// `time.ParseDuration`, returning nanoseconds.
    public static func parseDuration(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        var index = 0
        var negative = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
            negative = bytes[index] == UInt8(ascii: "-")
            index += 1
        }
        if bytes.count - index == 1, bytes[index] == UInt8(ascii: "0") { return 0 }
        guard index < bytes.count else { return nil }

        let limit: UInt64 = 1 << 63
        var total: UInt64 = 0
        func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

        while index < bytes.count {
            // The next character must be [0-9.]
            guard bytes[index] == UInt8(ascii: ".") || isDigit(bytes[index]) else { return nil }
            // Integer part.
            var integer: UInt64 = 0
            let integerStart = index
            while index < bytes.count, isDigit(bytes[index]) {
                guard integer <= (limit - 1) / 10 else { return nil }  // overflow
                integer = integer * 10 + UInt64(bytes[index] - UInt8(ascii: "0"))
                guard integer <= limit else { return nil }
                index += 1
            }
            let hadInteger = index > integerStart
            // Fraction.
            var fraction: UInt64 = 0
            var scale: Double = 1
            var hadFraction = false
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                let fractionStart = index
                var overflowed = false
                while index < bytes.count, isDigit(bytes[index]) {
                    if !overflowed {
                        if fraction > (limit - 1) / 10 {
                            overflowed = true  // further digits are ignored, as Go does
                        } else {
                            fraction = fraction * 10 + UInt64(bytes[index] - UInt8(ascii: "0"))
                            scale *= 10
                        }
                    }
                    index += 1
                }
                hadFraction = index > fractionStart
            }
            guard hadInteger || hadFraction else { return nil }
            // Unit: up to the next '.' or digit.
            let unitStart = index
            while index < bytes.count, bytes[index] != UInt8(ascii: "."), !isDigit(bytes[index]) { index += 1 }
            guard index > unitStart else { return nil }  // missing unit
            let unitNanos: UInt64
            switch String(decoding: bytes[unitStart..<index], as: UTF8.self) {
            case "ns": unitNanos = 1
            case "us", "\u{00B5}s", "\u{03BC}s": unitNanos = 1_000
            case "ms": unitNanos = 1_000_000
            case "s": unitNanos = 1_000_000_000
            case "m": unitNanos = 60_000_000_000
            case "h": unitNanos = 3_600_000_000_000
            default: return nil
            }
            guard integer <= limit / unitNanos else { return nil }
            var value = integer * unitNanos
            if fraction > 0 {
                value += UInt64(Double(fraction) * (Double(unitNanos) / scale))
                guard value <= limit else { return nil }
            }
            total += value
            guard total <= limit else { return nil }
        }
        if negative { return total == limit ? Int64.min : -Int64(total) }
        guard total <= limit - 1 else { return nil }
        return Int64(total)
    }

    /// Go's `Duration.String()` for the whole-second and millisecond defaults this
    /// program prints in its warnings ("10s", "1.5s", "300ms").
    public static func formatDuration(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let nanos = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        if nanos == 0 { return "0s" }
        if nanos % 1_000_000_000 == 0 { return "\(nanos / 1_000_000_000)s" }
        if nanos < 1_000_000_000, nanos % 1_000_000 == 0 { return "\(nanos / 1_000_000)ms" }
        var fraction = String(nanos % 1_000_000_000)
        fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(nanos / 1_000_000_000).\(fraction)s"
    }
}
