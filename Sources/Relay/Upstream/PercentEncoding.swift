/// Percent-encoding helpers working on UTF-8 bytes, so the relay needs no Foundation URL
/// machinery on its hot path and keeps every byte it does not have to touch.

struct AllowedBytes: Sendable {
    var table: [Bool]

    init(_ extra: String) {
        var table = [Bool](repeating: false, count: 256)
        for byte in UInt8(ascii: "a")...UInt8(ascii: "z") { table[Int(byte)] = true }
        for byte in UInt8(ascii: "A")...UInt8(ascii: "Z") { table[Int(byte)] = true }
        for byte in UInt8(ascii: "0")...UInt8(ascii: "9") { table[Int(byte)] = true }
        for byte in extra.utf8 { table[Int(byte)] = true }
        self.table = table
    }

    func contains(_ byte: UInt8) -> Bool { table[Int(byte)] }

    /// RFC 3986 unreserved characters: what Go's `url.QueryEscape` leaves alone.
    static let unreserved = AllowedBytes("-._~")
    /// What may stand in a path segment (pchar) plus the separator.
    static let path = AllowedBytes("-._~!$&'()*+,;=:@/")
    /// What may stand in a query.
    static let query = AllowedBytes("-._~!$&'()*+,;=:@/?")
    static let userInfo = AllowedBytes("-._~!$&'()*+,;=")
}

private let hexDigits = Array("0123456789ABCDEF".utf8)

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}

/// Encodes every byte outside `allowed` as `%XX`.
func percentEncode(_ text: some StringProtocol, allowed: AllowedBytes) -> String {
    var out = [UInt8]()
    out.reserveCapacity(text.utf8.count)
    for byte in text.utf8 {
        if allowed.contains(byte) {
            out.append(byte)
        } else {
            out.append(UInt8(ascii: "%"))
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0xF)])
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// Go's `url.QueryEscape`: unreserved bytes stay, space becomes `+`, the rest `%XX`.
public func queryEscape(_ text: some StringProtocol) -> String {
    var out = [UInt8]()
    out.reserveCapacity(text.utf8.count)
    for byte in text.utf8 {
        if AllowedBytes.unreserved.contains(byte) {
            out.append(byte)
        } else if byte == UInt8(ascii: " ") {
            out.append(UInt8(ascii: "+"))
        } else {
            out.append(UInt8(ascii: "%"))
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0xF)])
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// Strict percent-decoding; `plusIsSpace` gives Go's `url.QueryUnescape`.
/// Returns nil for a malformed escape or bytes that are not UTF-8.
func percentDecode(_ text: some StringProtocol, plusIsSpace: Bool = false) -> String? {
    let bytes = Array(text.utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count)
    var index = 0
    while index < bytes.count {
        let byte = bytes[index]
        if byte == UInt8(ascii: "%") {
            guard index + 2 < bytes.count,
                let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2])
            else { return nil }
            out.append(high << 4 | low)
            index += 3
        } else {
            out.append(plusIsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            index += 1
        }
    }
    return String(validating: out, as: UTF8.self)
}

/// Makes a request target safe to put in a URL without changing what it means:
/// bytes that may not appear raw (space, `{`, `"`, non-ASCII, …) become `%XX`;
/// valid escapes and everything else stay byte for byte. A `%` that does not start a
/// valid escape is itself encoded, as a server would read it literally.
func sanitizeURLComponent(_ text: some StringProtocol, allowed: AllowedBytes) -> String {
    let bytes = Array(text.utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count)
    var index = 0
    var changed = false
    while index < bytes.count {
        let byte = bytes[index]
        if byte == UInt8(ascii: "%"), index + 2 < bytes.count,
            hexValue(bytes[index + 1]) != nil, hexValue(bytes[index + 2]) != nil
        {
            out.append(contentsOf: bytes[index...index + 2])
            index += 3
            continue
        }
        if allowed.contains(byte) {
            out.append(byte)
        } else {
            changed = true
            out.append(UInt8(ascii: "%"))
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0xF)])
        }
        index += 1
    }
    return changed ? String(decoding: out, as: UTF8.self) : String(text)
}

/// Go's `path.Clean` applied to `"/" + path`: the result is rooted, has no empty, `.`
/// or `..` segments, and never climbs above `/`. Segments that only *decode* to `.` or
/// `..` (`%2e%2E`) count as dot segments too, because the remote may decode them.
func cleanRootedPath(_ path: some StringProtocol) -> String {
    // Most remotes have no base path: no splitting and joining at start-up for them.
    if path.isEmpty || path == "/" { return "/" }
    let path = String(path)
    var segments: [Substring] = []
    for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
        let decoded = segment.contains("%") ? (percentDecode(segment) ?? String(segment)) : String(segment)
        switch decoded {
        case ".": continue
        case "..": if !segments.isEmpty { segments.removeLast() }
        default: segments.append(segment)
        }
    }
    return "/" + segments.joined(separator: "/")
}
