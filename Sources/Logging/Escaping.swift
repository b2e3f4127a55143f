#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

private let lowerHex: StaticString = "0123456789abcdef"

@inline(__always)
private func hexDigit(_ v: UInt8) -> UInt8 { lowerHex.utf8Start[Int(v & 0xF)] }

/// Go's `utf8.DecodeRune`: a rune and its width, or nil for an invalid byte (which
/// Go reports as RuneError of width 1, so callers treat one byte at a time).
@inline(__always)
func decodeGoRune(_ s: UnsafeBufferPointer<UInt8>, at i: Int) -> (rune: UInt32, width: Int)? {
    let n = s.count - i
    let b0 = s[i]
    if b0 < 0x80 { return (UInt32(b0), 1) }
    @inline(__always) func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool {
        k < n && s[i + k] >= lo && s[i + k] <= hi
    }
    switch b0 {
    case 0xC2...0xDF:
        guard cont(1) else { return nil }
        return (UInt32(b0 & 0x1F) << 6 | UInt32(s[i + 1] & 0x3F), 2)
    case 0xE0...0xEF:
        let lo: UInt8 = b0 == 0xE0 ? 0xA0 : 0x80
        let hi: UInt8 = b0 == 0xED ? 0x9F : 0xBF
        guard cont(1, lo, hi), cont(2) else { return nil }
        return (UInt32(b0 & 0x0F) << 12 | UInt32(s[i + 1] & 0x3F) << 6 | UInt32(s[i + 2] & 0x3F), 3)
    case 0xF0...0xF4:
        let lo: UInt8 = b0 == 0xF0 ? 0x90 : 0x80
        let hi: UInt8 = b0 == 0xF4 ? 0x8F : 0xBF
        guard cont(1, lo, hi), cont(2), cont(3) else { return nil }
        return (
            UInt32(b0 & 0x07) << 18 | UInt32(s[i + 1] & 0x3F) << 12 | UInt32(s[i + 2] & 0x3F) << 6
                | UInt32(s[i + 3] & 0x3F), 4
        )
    default:
        return nil
    }
}

@inline(__always)
func withUTF8Bytes<R>(_ s: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    if let r = s.utf8.withContiguousStorageIfAvailable(body) { return r }
    return Array(s.utf8).withUnsafeBufferPointer(body)
}

// MARK: - JSON (encoding/json with HTML escaping on, Go >= 1.22)

/// Appends `"…"` escaped as Go's `encoding/json` does with `SetEscapeHTML(true)`:
/// short escapes for `\" \\ \n \r \t \b \f` (`\b`/`\f` since Go 1.22), `\u00xx` for
/// other control bytes and `< > &`, `\u2028`/`\u2029`, and `\ufffd` for each invalid
/// UTF-8 byte. DEL and other non-ASCII runes are written raw.
func appendJSONString(_ s: String, to b: inout [UInt8]) {
    withUTF8Bytes(s) { appendJSONString($0, to: &b) }
}

func appendJSONString(_ src: UnsafeBufferPointer<UInt8>, to b: inout [UInt8]) {
    b.append(UInt8(ascii: "\""))
    var start = 0
    var i = 0
    let n = src.count
    while i < n {
        let c = src[i]
        if c < 0x80 {
            if c >= 0x20 && c != 0x22 && c != 0x5C && c != 0x3C && c != 0x3E && c != 0x26 {
                i += 1
                continue
            }
            if start < i { b.append(contentsOf: UnsafeBufferPointer(rebasing: src[start..<i])) }
            b.append(UInt8(ascii: "\\"))
            switch c {
            case 0x22, 0x5C: b.append(c)
            case 0x08: b.append(UInt8(ascii: "b"))
            case 0x0C: b.append(UInt8(ascii: "f"))
            case 0x0A: b.append(UInt8(ascii: "n"))
            case 0x0D: b.append(UInt8(ascii: "r"))
            case 0x09: b.append(UInt8(ascii: "t"))
            default:
                b.append(contentsOf: [UInt8(ascii: "u"), 0x30, 0x30, hexDigit(c >> 4), hexDigit(c)])
            }
            i += 1
            start = i
            continue
        }
        guard let (rune, width) = decodeGoRune(src, at: i) else {
            if start < i { b.append(contentsOf: UnsafeBufferPointer(rebasing: src[start..<i])) }
            b.append(contentsOf: Array(#"\ufffd"#.utf8))
            i += 1
            start = i
            continue
        }
        if rune == 0x2028 || rune == 0x2029 {
            if start < i { b.append(contentsOf: UnsafeBufferPointer(rebasing: src[start..<i])) }
            b.append(contentsOf: Array(#"\u202"#.utf8))
            b.append(hexDigit(UInt8(rune & 0xF)))
            i += width
            start = i
            continue
        }
        i += width
    }
    if start < n { b.append(contentsOf: UnsafeBufferPointer(rebasing: src[start..<n])) }
    b.append(UInt8(ascii: "\""))
}

// MARK: - Text (logrus needsQuoting + strconv.Quote)

/// logrus `needsQuoting` with ForceQuote/QuoteEmptyFields/DisableQuote off: bare only
/// if every rune is `[A-Za-z0-9]` or one of `- . _ / @ ^ +` (so the empty string is
/// bare). Any non-ASCII rune, and any invalid byte, forces quoting.
@inline(__always)
func textNeedsQuoting(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
    for c in s {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "/"), UInt8(ascii: "@"), UInt8(ascii: "^"), UInt8(ascii: "+"):
            continue
        default:
            return true
        }
    }
    return false
}

/// Appends a text-formatter value: raw when `textNeedsQuoting` says so, else `%q`.
func appendTextValue(_ s: UnsafeBufferPointer<UInt8>, to b: inout [UInt8]) {
    if textNeedsQuoting(s) {
        appendGoQuoted(s, to: &b)
    } else {
        b.append(contentsOf: s)
    }
}

func appendTextValue(_ s: String, to b: inout [UInt8]) {
    withUTF8Bytes(s) { appendTextValue($0, to: &b) }
}

/// Go's `strconv.Quote`.
func appendGoQuoted(_ s: UnsafeBufferPointer<UInt8>, to b: inout [UInt8]) {
    b.append(UInt8(ascii: "\""))
    var i = 0
    while i < s.count {
        let c = s[i]
        if c < 0x80 {
            switch c {
            case 0x22, 0x5C:
                b.append(UInt8(ascii: "\\"))
                b.append(c)
            case 0x20...0x7E:
                b.append(c)
            case 0x07: b.append(contentsOf: [0x5C, UInt8(ascii: "a")])
            case 0x08: b.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x0C: b.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0x0A: b.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: b.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: b.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x0B: b.append(contentsOf: [0x5C, UInt8(ascii: "v")])
            default:  // other C0 controls and DEL
                b.append(contentsOf: [0x5C, UInt8(ascii: "x"), hexDigit(c >> 4), hexDigit(c)])
            }
            i += 1
            continue
        }
        guard let (rune, width) = decodeGoRune(s, at: i) else {
            b.append(contentsOf: [0x5C, UInt8(ascii: "x"), hexDigit(c >> 4), hexDigit(c)])
            i += 1
            continue
        }
        if isGoPrintable(rune) {
            b.append(contentsOf: UnsafeBufferPointer(rebasing: s[i..<i + width]))
        } else if rune < 0x10000 {
            b.append(contentsOf: [0x5C, UInt8(ascii: "u")])
            for shift in stride(from: 12, through: 0, by: -4) { b.append(hexDigit(UInt8((rune >> UInt32(shift)) & 0xF))) }
        } else {
            b.append(contentsOf: [0x5C, UInt8(ascii: "U")])
            for shift in stride(from: 28, through: 0, by: -4) { b.append(hexDigit(UInt8((rune >> UInt32(shift)) & 0xF))) }
        }
        i += width
    }
    b.append(UInt8(ascii: "\""))
}

func appendGoQuoted(_ s: String, to b: inout [UInt8]) {
    withUTF8Bytes(s) { appendGoQuoted($0, to: &b) }
}

/// Go's `%q` of a string, as a String (used for the logrus_error key quoting).
func goQuote(_ s: String) -> String {
    var b: [UInt8] = []
    appendGoQuoted(s, to: &b)
    return String(decoding: b, as: UTF8.self)
}

/// Go's `strconv.IsPrint` for a non-ASCII rune: Unicode categories L, M, N, P, S.
/// (The tables follow this toolchain's Unicode version, which may be newer than
/// Go's for recently assigned characters.)
func isGoPrintable(_ rune: UInt32) -> Bool {
    guard let scalar = Unicode.Scalar(rune) else { return false }
    switch scalar.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
        .nonspacingMark, .spacingMark, .enclosingMark,
        .decimalNumber, .letterNumber, .otherNumber,
        .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
        .initialPunctuation, .finalPunctuation, .otherPunctuation,
        .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
        return true
    default:
        return false
    }
}

// MARK: - Redaction

/// Replaces configured secrets with `[REDACTED]`, longest secret first so a secret
/// that contains another is masked whole. Works on UTF-8 bytes: a valid UTF-8
/// needle can only match at scalar boundaries, so the result stays valid.
struct Redactor: Sendable {
    static let mask = "[REDACTED]"
    let secrets: [[UInt8]]

    init(_ secrets: [String]) {
        var unique: [[UInt8]] = []
        for s in secrets where !s.isEmpty {
            let bytes = Array(s.utf8)
            if !unique.contains(bytes) { unique.append(bytes) }
        }
        self.secrets = unique.sorted { $0.count > $1.count }
    }

    var isEmpty: Bool { secrets.isEmpty }

    func redact(_ s: String) -> String {
        if secrets.isEmpty || s.isEmpty { return s }
        var current = s
        for secret in secrets {
            if let replaced = Redactor.replace(secret, in: current) { current = replaced }
        }
        return current
    }

    /// nil when the secret does not occur (the common case allocates nothing).
    private static func replace(_ needle: [UInt8], in s: String) -> String? {
        withUTF8Bytes(s) { hay -> String? in
            needle.withUnsafeBufferPointer { nd -> String? in
                guard let base = hay.baseAddress, let nbase = nd.baseAddress, hay.count >= nd.count else { return nil }
                var out: [UInt8] = []
                var pos = 0
                while pos <= hay.count - nd.count {
                    guard let offset = find(nbase, nd.count, in: base, hay.count, from: pos) else { break }
                    if out.isEmpty { out.reserveCapacity(hay.count + 16) }
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: hay[pos..<offset]))
                    out.append(contentsOf: mask.utf8)
                    pos = offset + nd.count
                }
                if pos == 0 { return nil }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: hay[pos...]))
                return String(decoding: out, as: UTF8.self)
            }
        }
    }

    /// First occurrence of the needle at or after `from`: memchr for its first byte,
    /// memcmp for the rest (memmem is a GNU extension Swift's Glibc does not export).
    private static func find(
        _ needle: UnsafePointer<UInt8>, _ needleCount: Int, in hay: UnsafePointer<UInt8>, _ hayCount: Int, from: Int
    ) -> Int? {
        var pos = from
        let first = Int32(needle[0])
        while hayCount - pos >= needleCount {
            guard let hit = memchr(hay + pos, first, hayCount - pos - needleCount + 1) else { return nil }
            let at = UnsafeRawPointer(hay).distance(to: UnsafeRawPointer(hit))
            if memcmp(hay + at, needle, needleCount) == 0 { return at }
            pos = at + 1
        }
        return nil
    }

    func redact(_ v: LogFieldValue) -> LogFieldValue {
        if secrets.isEmpty { return v }
        switch v {
        case .string(let s): return .string(redact(s))
        case .array(let a): return .array(a.map(redact))
        case .object(let o): return .object(o.map { (key: redact($0.key), value: redact($0.value)) })
        case .null:
            return v
        case .bool, .int, .uint, .integerLiteral, .double, .float:
            // A secret like `12345` or `true` must not survive as a number or bool
            // either; a hit turns the value into the redacted string.
            var text: [UInt8] = []
            appendGoV(v, to: &text)
            let s = String(decoding: text, as: UTF8.self)
            let r = redact(s)
            return r == s ? v : .string(r)
        }
    }
}
