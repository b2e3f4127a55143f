extension JSONValue {
    /// The deepest nesting of arrays and objects `parse` accepts by default: the bodies the
    /// relay reads nest four levels at most, and the limit keeps recursion bounded.
    public static let defaultMaxDepth = 64

    /// Parses one JSON text (RFC 8259), strictly: no comments, trailing commas, leading
    /// zeros, raw control characters, invalid UTF-8 or unpaired surrogate escapes, and
    /// nothing but white space after the value. A leading UTF-8 byte order mark is skipped,
    /// as the RFC allows and `JSONDecoder` does.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws(JSONError) -> JSONValue {
        var scanner = JSONScanner(bytes: bytes, maxDepth: maxDepth)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { scanner.index = 3 }
        scanner.skipWhitespace()
        let value = try scanner.scanValue()
        scanner.skipWhitespace()
        guard scanner.index == bytes.count else { throw scanner.error(.trailingData, "unexpected \(scanner.describeByte()) after the value") }
        return value
    }

    public static func parse(_ text: String, maxDepth: Int = defaultMaxDepth) throws(JSONError) -> JSONValue {
        try parse(Array(text.utf8), maxDepth: maxDepth)
    }
}

/// A recursive-descent scanner over UTF-8 bytes; `index` is the next byte to read.
struct JSONScanner {
    let bytes: [UInt8]
    let maxDepth: Int
    var index = 0
    var depth = 0

    init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    func error(_ code: JSONError.Code, _ message: String, at offset: Int? = nil) -> JSONError {
        JSONError(code, message, offset: offset ?? index)
    }

    func describeByte() -> String {
        guard index < bytes.count else { return "end of input" }
        let byte = bytes[index]
        return (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(hex(byte))"
    }

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func skipWhitespace() {
        // RFC 8259 white space is exactly these four; no form feed, no NBSP.
        while let byte = peek, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
    }

    mutating func scanValue() throws(JSONError) -> JSONValue {
        guard let byte = peek else { throw error(.unexpectedEnd, "expected a value, found the end of input") }
        switch byte {
        case UInt8(ascii: "{"): return try scanObject()
        case UInt8(ascii: "["): return try scanArray()
        case UInt8(ascii: "\""): return .string(try scanString())
        case UInt8(ascii: "t"): return try scanLiteral("true", .bool(true))
        case UInt8(ascii: "f"): return try scanLiteral("false", .bool(false))
        case UInt8(ascii: "n"): return try scanLiteral("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try scanNumber())
        default: throw error(.unexpectedByte, "expected a value, found \(describeByte())")
        }
    }

    mutating func scanLiteral(_ word: String, _ value: JSONValue) throws(JSONError) -> JSONValue {
        let start = index
        for byte in word.utf8 {
            guard let next = peek else { throw error(.unexpectedEnd, "input ends inside '\(word)'") }
            guard next == byte else { throw error(.unexpectedByte, "expected '\(word)' (from byte \(start)), found \(describeByte())") }
            index += 1
        }
        return value
    }

    mutating func enterContainer() throws(JSONError) {
        depth += 1
        guard depth <= maxDepth else { throw error(.tooDeep, "arrays and objects nest deeper than \(maxDepth) levels") }
        index += 1
    }

    mutating func scanArray() throws(JSONError) -> JSONValue {
        try enterContainer()
        defer { depth -= 1 }
        var elements: [JSONValue] = []
        skipWhitespace()
        if peek == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try scanValue())
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"):
                index += 1
                return .array(elements)
            case nil: throw error(.unexpectedEnd, "input ends inside an array")
            default: throw error(.unexpectedByte, "expected ',' or ']' in an array, found \(describeByte())")
            }
        }
    }

    mutating func scanObject() throws(JSONError) -> JSONValue {
        try enterContainer()
        defer { depth -= 1 }
        var members: [(key: String, value: JSONValue)] = []
        skipWhitespace()
        if peek == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard peek == UInt8(ascii: "\"") else {
                if peek == nil { throw error(.unexpectedEnd, "input ends inside an object") }
                throw error(.unexpectedByte, "expected a string key in an object, found \(describeByte())")
            }
            let key = try scanString()
            skipWhitespace()
            guard peek == UInt8(ascii: ":") else {
                if peek == nil { throw error(.unexpectedEnd, "input ends inside an object") }
                throw error(.unexpectedByte, "expected ':' after the key '\(key)', found \(describeByte())")
            }
            index += 1
            skipWhitespace()
            members.append((key, try scanValue()))
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                return .object(members)
            case nil: throw error(.unexpectedEnd, "input ends inside an object")
            default: throw error(.unexpectedByte, "expected ',' or '}' in an object, found \(describeByte())")
            }
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, kept as text. Exponents of any
    /// size pass (the grammar has no limit); `double` says whether a `Double` holds them.
    mutating func scanNumber() throws(JSONError) -> JSONNumber {
        let start = index
        if peek == UInt8(ascii: "-") { index += 1 }
        guard let first = peek, isDigit(first) else { throw numberError(start) }
        index += 1
        if first == UInt8(ascii: "0"), let next = peek, isDigit(next) {
            throw error(.invalidNumber, "a number must not have a leading zero (from byte \(start))")
        }
        skipDigits()
        if peek == UInt8(ascii: ".") {
            index += 1
            guard let next = peek, isDigit(next) else { throw numberError(start) }
            skipDigits()
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            index += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
            guard let next = peek, isDigit(next) else { throw numberError(start) }
            skipDigits()
        }
        return JSONNumber(uncheckedText: String(decoding: bytes[start..<index], as: UTF8.self))
    }

    private func numberError(_ start: Int) -> JSONError {
        error(.invalidNumber, "a number (from byte \(start)) needs a digit here, found \(describeByte())")
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private mutating func skipDigits() {
        while let byte = peek, isDigit(byte) { index += 1 }
    }
}

func hex(_ byte: UInt8) -> String {
    let digits = Array("0123456789abcdef".utf8)
    return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]], as: UTF8.self)
}
