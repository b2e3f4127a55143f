import Logging

/// A field value as logrus' formatters see it (the dynamic type of a Go
/// `interface{}` in `logrus.Fields`), reduced to what a swift-log entry can carry.
public enum LogFieldValue: Sendable {
    case string(String)
    case int(Int64)
    case uint(UInt64)
    /// An integer literal of a wider type (Int128, …), as its decimal description.
    case integerLiteral(String)
    case double(Double)
    /// Kept apart from `double` because Go formats float32 with float32's shortest
    /// digits (`Float(0.1)` prints `0.1`, not `0.10000000149011612`).
    case float(Float)
    case bool(Bool)
    /// Go's nil: `null` in JSON, `<nil>` in text.
    case null
    case array([LogFieldValue])
    /// A Go map: JSON sorts its keys, `%v` prints `map[k:v …]` sorted.
    case object([(key: String, value: LogFieldValue)])

    /// Maps swift-log metadata: numbers and bools behind `.stringConvertible` become
    /// JSON numbers/bools (as the same Go values would); any other convertible is its
    /// description, a string.
    public init(_ value: Logger.MetadataValue) {
        switch value {
        case .string(let s): self = .string(s)
        case .stringConvertible(let c): self = LogFieldValue(convertible: c)
        case .array(let a): self = .array(a.map(LogFieldValue.init))
        case .dictionary(let d): self = .object(d.map { (key: $0.key, value: LogFieldValue($0.value)) })
        }
    }

    init(convertible c: any CustomStringConvertible & Sendable) {
        // Concrete casts first: they are far cheaper than existential ones and cover
        // nearly every value logged in practice.
        if let v = c as? Int { self = .int(Int64(v)); return }
        if let v = c as? String { self = .string(v); return }
        if let v = c as? Bool { self = .bool(v); return }
        if let v = c as? Double { self = .double(v); return }
        if let v = c as? Float { self = .float(v); return }
        if let v = c as? any BinaryInteger {
            if let i = Int64(exactly: v) {
                self = .int(i)
            } else if let u = UInt64(exactly: v) {
                self = .uint(u)
            } else {
                self = .integerLiteral(v.description)
            }
            return
        }
        if let v = c as? any BinaryFloatingPoint {
            self = .double(Double(v))
            return
        }
        self = .string(c.description)
    }

    /// False for values `encoding/json` refuses (NaN, ±Inf), anywhere inside.
    var isJSONEncodable: Bool {
        switch self {
        case .double(let d): d.isFinite
        case .float(let f): f.isFinite
        case .array(let a): a.allSatisfy(\.isJSONEncodable)
        case .object(let o): o.allSatisfy(\.value.isJSONEncodable)
        default: true
        }
    }
}

// MARK: - Go float formatting

/// A finite double's shortest round-trip digits, in Go's `decimal` terms:
/// value = 0.d1d2…dn × 10^dp. Swift's `description` already yields the shortest
/// round-trip digits (as Go's `FormatFloat(…, -1, …)` does); only the layout of
/// those digits differs, so it is re-laid out here.
struct ShortestDigits {
    var negative = false
    var digits: [UInt8] = []
    var dp = 0

    init(_ description: String) {
        var intPart: [UInt8] = []
        var fracPart: [UInt8] = []
        var exponent = 0
        var expNegative = false
        var state = 0  // 0 int, 1 frac, 2 exponent
        for c in description.utf8 {
            switch c {
            case UInt8(ascii: "-"):
                if state == 2 { expNegative = true } else { negative = true }
            case UInt8(ascii: "+"):
                break
            case UInt8(ascii: "."):
                state = 1
            case UInt8(ascii: "e"), UInt8(ascii: "E"):
                state = 2
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                switch state {
                case 0: intPart.append(c)
                case 1: fracPart.append(c)
                default: exponent = exponent * 10 + Int(c - 0x30)
                }
            default:
                break
            }
        }
        digits = intPart + fracPart
        dp = intPart.count + (expNegative ? -exponent : exponent)
        var leading = 0
        while leading < digits.count && digits[leading] == UInt8(ascii: "0") { leading += 1 }
        digits.removeFirst(leading)
        dp -= leading
        while let last = digits.last, last == UInt8(ascii: "0") { digits.removeLast() }
        if digits.isEmpty { dp = 0 }
    }

    /// strconv's `%e` with shortest precision: `d.ddde±XX` (at least two exponent digits).
    func appendE(to b: inout [UInt8]) {
        if negative { b.append(UInt8(ascii: "-")) }
        b.append(digits.first ?? UInt8(ascii: "0"))
        if digits.count > 1 {
            b.append(UInt8(ascii: "."))
            b.append(contentsOf: digits[1...])
        }
        b.append(UInt8(ascii: "e"))
        var exp = digits.isEmpty ? 0 : dp - 1
        if exp < 0 {
            b.append(UInt8(ascii: "-"))
            exp = -exp
        } else {
            b.append(UInt8(ascii: "+"))
        }
        if exp < 10 {
            b.append(UInt8(ascii: "0"))
            b.append(0x30 + UInt8(exp))
        } else if exp < 100 {
            b.append(0x30 + UInt8(exp / 10))
            b.append(0x30 + UInt8(exp % 10))
        } else {
            b.append(0x30 + UInt8(exp / 100))
            b.append(0x30 + UInt8(exp / 10 % 10))
            b.append(0x30 + UInt8(exp % 10))
        }
    }

    /// strconv's `%f` with shortest precision.
    func appendF(to b: inout [UInt8]) {
        if negative { b.append(UInt8(ascii: "-")) }
        if dp > 0 {
            let m = min(digits.count, dp)
            b.append(contentsOf: digits[0..<m])
            if m < dp { b.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: dp - m)) }
        } else {
            b.append(UInt8(ascii: "0"))
        }
        let precision = max(digits.count - dp, 0)
        if precision > 0 {
            b.append(UInt8(ascii: "."))
            for i in 1...precision {
                let j = dp + i - 1
                b.append(j >= 0 && j < digits.count ? digits[j] : UInt8(ascii: "0"))
            }
        }
    }

    /// The exponent `%e` would print (Go's `dp - 1`).
    var decimalExponent: Int { digits.isEmpty ? 0 : dp - 1 }
}

/// Go's `fmt.Sprint(float)`: strconv 'g' with shortest digits, where the switch to
/// exponent form uses precision 6 (so `1e+06`, `1e-05`, `123456`).
func appendGoV(double d: Double, to b: inout [UInt8]) {
    appendGoV(ShortestDigits(d.description), to: &b)
}

func appendGoV(float f: Float, to b: inout [UInt8]) {
    appendGoV(ShortestDigits(f.description), to: &b)
}

private func appendGoV(_ digits: ShortestDigits, to b: inout [UInt8]) {
    let exp = digits.decimalExponent
    if exp < -4 || exp >= 6 { digits.appendE(to: &b) } else { digits.appendF(to: &b) }
}

/// `encoding/json`'s float encoder: `%f` unless |x| < 1e-6 or >= 1e21, and `e-07`
/// shortened to `e-7`.
func appendJSONNumber(double d: Double, to b: inout [UInt8]) {
    let digits = ShortestDigits(d.description)
    let a = abs(d)
    appendJSONNumber(digits, exponentForm: a != 0 && (a < 1e-6 || a >= 1e21), to: &b)
}

func appendJSONNumber(float f: Float, to b: inout [UInt8]) {
    let digits = ShortestDigits(f.description)
    let a = abs(f)
    appendJSONNumber(digits, exponentForm: a != 0 && (a < 1e-6 || a >= 1e21), to: &b)
}

private func appendJSONNumber(_ digits: ShortestDigits, exponentForm: Bool, to b: inout [UInt8]) {
    guard exponentForm else {
        digits.appendF(to: &b)
        return
    }
    digits.appendE(to: &b)
    let n = b.count
    if n >= 4 && b[n - 4] == UInt8(ascii: "e") && b[n - 3] == UInt8(ascii: "-") && b[n - 2] == UInt8(ascii: "0") {
        b[n - 2] = b[n - 1]
        b.removeLast()
    }
}
