extension JSONScanner {
    /// A string from its opening quote: escapes resolved, UTF-8 validated byte by byte so an
    /// error names the offset. An unpaired surrogate escape (`"\uD800"`) is an error rather
    /// than U+FFFD: a Swift `String` cannot hold it, and replacing it would silently change a
    /// secret or a header value.
    mutating func scanString() throws(JSONError) -> String {
        index += 1
        var utf8: [UInt8] = []
        while true {
            guard let byte = peek else { throw error(.unexpectedEnd, "input ends inside a string") }
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try scanEscape(into: &utf8)
            case 0x00..<0x20:
                throw error(.controlCharacter, "control character 0x\(hex(byte)) in a string must be escaped")
            case 0x20..<0x80:
                utf8.append(byte)
                index += 1
            default:
                let length = try utf8SequenceLength()
                utf8.append(contentsOf: bytes[index..<index + length])
                index += length
            }
        }
    }

    /// The length of the valid UTF-8 sequence at `index` (RFC 3629: no overlong forms, no
    /// encoded surrogates, nothing above U+10FFFF).
    private func utf8SequenceLength() throws(JSONError) -> Int {
        let lead = bytes[index]
        let length: Int
        var second: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            second = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED:
            length = 3
            second = 0x80...0x9F
        case 0xF0:
            length = 4
            second = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            second = 0x80...0x8F
        default: throw error(.invalidUnicode, "byte 0x\(hex(lead)) cannot start a UTF-8 sequence")
        }
        for offset in 1..<length {
            let position = index + offset
            guard position < bytes.count else { throw error(.unexpectedEnd, "input ends inside a UTF-8 sequence", at: position) }
            let allowed = offset == 1 ? second : 0x80...0xBF
            guard allowed.contains(bytes[position]) else {
                throw error(.invalidUnicode, "byte 0x\(hex(bytes[position])) is not valid in this UTF-8 sequence", at: position)
            }
        }
        return length
    }

    private mutating func scanEscape(into utf8: inout [UInt8]) throws(JSONError) {
        let start = index
        index += 1
        guard let byte = peek else { throw error(.unexpectedEnd, "input ends inside an escape") }
        index += 1
        let simple: UInt8? =
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): byte
            case UInt8(ascii: "b"): 0x08
            case UInt8(ascii: "f"): 0x0C
            case UInt8(ascii: "n"): 0x0A
            case UInt8(ascii: "r"): 0x0D
            case UInt8(ascii: "t"): 0x09
            default: nil
            }
        if let simple {
            utf8.append(simple)
            return
        }
        guard byte == UInt8(ascii: "u") else { throw error(.invalidEscape, "'\\\(Character(Unicode.Scalar(byte)))' is not a JSON escape", at: start) }
        var scalar = try scanHex4()
        if (0xDC00...0xDFFF).contains(scalar) {
            throw error(.invalidUnicode, "\\u\(hex16(scalar)) is a low surrogate without a high one", at: start)
        }
        if (0xD800...0xDBFF).contains(scalar) {
            guard peek == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                throw error(.invalidUnicode, "\\u\(hex16(scalar)) is a high surrogate without a low one", at: start)
            }
            index += 2
            let low = try scanHex4()
            guard (0xDC00...0xDFFF).contains(low) else {
                throw error(.invalidUnicode, "\\u\(hex16(scalar)) is a high surrogate followed by \\u\(hex16(low)), not a low one", at: start)
            }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        }
        // Every value left is a valid scalar: surrogates were paired or refused above.
        utf8.append(contentsOf: Unicode.Scalar(scalar)!.utf8)
    }

    private mutating func scanHex4() throws(JSONError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = peek else { throw error(.unexpectedEnd, "input ends inside a \\u escape") }
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error(.invalidEscape, "a \\u escape needs four hex digits, found \(describeByte())")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private func hex16(_ value: UInt32) -> String { hex(UInt8(value >> 8)) + hex(UInt8(value & 0xFF)) }
}
