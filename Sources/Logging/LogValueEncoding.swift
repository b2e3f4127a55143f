import GoCompatibility

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// `encoding/json` of a field value.
func appendJSONValue(_ v: LogFieldValue, to b: inout [UInt8]) {
    switch v {
    case .string(let s): appendJSONString(s, to: &b)
    case .int(let i): appendGoInt(&b, Int(i), width: 0)
    case .uint(let u): b.append(contentsOf: u.description.utf8)
    case .integerLiteral(let s): b.append(contentsOf: s.utf8)
    case .double(let d): appendJSONNumber(double: d, to: &b)
    case .float(let f): appendJSONNumber(float: f, to: &b)
    case .bool(let x): b.append(contentsOf: (x ? "true" : "false").utf8)
    case .null: b.append(contentsOf: "null".utf8)
    case .array(let a):
        b.append(UInt8(ascii: "["))
        for (i, e) in a.enumerated() {
            if i > 0 { b.append(UInt8(ascii: ",")) }
            appendJSONValue(e, to: &b)
        }
        b.append(UInt8(ascii: "]"))
    case .object(let o):
        b.append(UInt8(ascii: "{"))
        for (i, e) in o.sorted(by: { keyLess($0.key, $1.key) }).enumerated() {
            if i > 0 { b.append(UInt8(ascii: ",")) }
            appendJSONString(e.key, to: &b)
            b.append(UInt8(ascii: ":"))
            appendJSONValue(e.value, to: &b)
        }
        b.append(UInt8(ascii: "}"))
    }
}

/// logrus `appendValue`: a string as-is, anything else as `fmt.Sprint`, then bare
/// or `%q`.
func appendTextValue(_ v: LogFieldValue, to b: inout [UInt8]) {
    switch v {
    case .string(let s):
        appendTextValue(s, to: &b)
    case .int, .uint, .integerLiteral, .double, .float, .bool:
        // Digits, `.`, `e`, `+`, `-` and letters only: never quoted.
        appendGoV(v, to: &b)
    case .null, .array, .object:
        var text: [UInt8] = []
        appendGoV(v, to: &text)
        text.withUnsafeBufferPointer { appendTextValue($0, to: &b) }
    }
}

/// `fmt.Sprint(v)` (`%v`): strings raw, floats in `%g`-shortest, nil as `<nil>`,
/// slices as `[a b]`, maps as `map[k:v]` with sorted keys.
func appendGoV(_ v: LogFieldValue, to b: inout [UInt8]) {
    switch v {
    case .string(let s): b.append(contentsOf: s.utf8)
    case .int(let i): appendGoInt(&b, Int(i), width: 0)
    case .uint(let u): b.append(contentsOf: u.description.utf8)
    case .integerLiteral(let s): b.append(contentsOf: s.utf8)
    case .double(let d):
        if d.isNaN {
            b.append(contentsOf: "NaN".utf8)
        } else if d.isInfinite {
            b.append(contentsOf: (d < 0 ? "-Inf" : "+Inf").utf8)
        } else {
            appendGoV(double: d, to: &b)
        }
    case .float(let f):
        if f.isNaN {
            b.append(contentsOf: "NaN".utf8)
        } else if f.isInfinite {
            b.append(contentsOf: (f < 0 ? "-Inf" : "+Inf").utf8)
        } else {
            appendGoV(float: f, to: &b)
        }
    case .bool(let x): b.append(contentsOf: (x ? "true" : "false").utf8)
    case .null: b.append(contentsOf: "<nil>".utf8)
    case .array(let a):
        b.append(UInt8(ascii: "["))
        for (i, e) in a.enumerated() {
            if i > 0 { b.append(UInt8(ascii: " ")) }
            appendGoV(e, to: &b)
        }
        b.append(UInt8(ascii: "]"))
    case .object(let o):
        b.append(contentsOf: "map[".utf8)
        for (i, e) in o.sorted(by: { keyLess($0.key, $1.key) }).enumerated() {
            if i > 0 { b.append(UInt8(ascii: " ")) }
            b.append(contentsOf: e.key.utf8)
            b.append(UInt8(ascii: ":"))
            appendGoV(e.value, to: &b)
        }
        b.append(UInt8(ascii: "]"))
    }
}

// MARK: - Byte-wise key comparison

/// Go compares strings by bytes; Swift's `==`/`<` use canonical equivalence, under
/// which two differently normalised keys would collapse. Keys compare as bytes here.
@inline(__always)
func keyLess(_ a: String, _ b: String) -> Bool {
    withUTF8Bytes(a) { pa in
        withUTF8Bytes(b) { pb in
            let n = min(pa.count, pb.count)
            if n > 0 {
                let r = memcmp(pa.baseAddress!, pb.baseAddress!, n)
                if r != 0 { return r < 0 }
            }
            return pa.count < pb.count
        }
    }
}

@inline(__always)
func keyEqual(_ a: String, _ b: String) -> Bool {
    if a.utf8.count != b.utf8.count { return false }
    return withUTF8Bytes(a) { pa in
        withUTF8Bytes(b) { pb in
            pa.count == 0 || memcmp(pa.baseAddress!, pb.baseAddress!, pa.count) == 0
        }
    }
}
