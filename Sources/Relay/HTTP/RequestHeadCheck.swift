import NIOHTTP1

/// What may not go on the wire in a request head (RFC 9110 §5.1, §5.5; RFC 9112 §3.2):
/// header names are tokens, values hold no control character but tab (a CR or LF would
/// smuggle a header or a second request), the target holds no space or control character.
/// The messages name the header, never its value (values carry credentials).
enum RequestHeadCheck {
    static func problem(in head: HTTPRequestHead) -> String? {
        if head.uri.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) { return "the request target holds a space or control character" }
        for (name, value) in head.headers {
            if name.isEmpty || !name.utf8.allSatisfy(isTokenByte) { return "the header name '\(name)' is not a token" }
            if !value.utf8.allSatisfy(isValueByte) { return "the value of header '\(name)' holds a control character" }
        }
        return nil
    }

    private static func isValueByte(_ byte: UInt8) -> Bool { byte == 0x09 || (byte >= 0x20 && byte != 0x7F) }

    private static func isTokenByte(_ byte: UInt8) -> Bool { tokenBytes[Int(byte)] }

    /// tchar: ALPHA, DIGIT and !#$%&'*+-.^_`|~, as a table: every header name of every
    /// upload is checked (a per-byte search cost 2.8% of the relay's instructions).
    private static let tokenBytes: [Bool] = (0..<256).map { value in
        let byte = UInt8(value)
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        default: return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
