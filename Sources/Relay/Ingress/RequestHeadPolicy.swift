import NIOHTTP1

/// The rules a request head must meet beyond what NIO's parser checks, so that what the
/// relay sends upstream means what the client sent (RFC 9112 §3.2, §3.3) and can be sent
/// at all (async-http-client refuses control characters in header values).
struct RequestHeadPolicy: Sendable {
    let limits: IngressLimits

    enum Verdict: Equatable {
        /// Relay it, with this origin-form target (an absolute-form target reduced to its path).
        case accept(target: String)
        /// Answer this status with this one-line body, then close the connection.
        case refuse(HTTPResponseStatus, String)
    }

    func check(_ head: HTTPRequestHead) -> Verdict {
        if head.method == .CONNECT {
            // A tunnel request: this relay is not a proxy, and relaying it upstream would
            // only earn a refusal that is then retried.
            return .refuse(.methodNotAllowed, "CONNECT is not supported: this relay is not a proxy")
        }
        let target = head.uri
        if target.utf8.count > limits.maxTargetBytes {
            return .refuse(.uriTooLong, "request target longer than \(limits.maxTargetBytes) bytes")
        }
        if head.headers.count > limits.maxHeaderCount {
            return .refuse(.requestHeaderFieldsTooLarge, "more than \(limits.maxHeaderCount) header lines")
        }
        if Self.headBytes(head) > limits.maxHeadBytes {
            return .refuse(.requestHeaderFieldsTooLarge, "request head larger than \(limits.maxHeadBytes) bytes")
        }
        let hosts = Self.hostCount(head.headers)
        if hosts > 1 {
            return .refuse(.badRequest, "more than one Host header")
        }
        if hosts == 0, head.version.major > 1 || (head.version.major == 1 && head.version.minor >= 1) {
            return .refuse(.badRequest, "HTTP/1.1 request without a Host header")
        }
        if let (name, _) = head.headers.first(where: { !Self.isSendableValue($0.value) }) {
            return .refuse(.badRequest, "header \(Self.printableName(name)) has a control character in its value")
        }
        guard let originForm = Self.originForm(target) else {
            return .refuse(.badRequest, "request target must be a path (origin form) or an absolute http(s) URL")
        }
        return .accept(target: originForm)
    }

    /// Host header lines, a comma-separated value counting as two (RFC 9110 §7.2: one
    /// value). Counted by hand: `headers[canonicalForm:]` built arrays of substrings for it,
    /// 2% of the relay's instructions per upload. An empty value (allowed) counts as one.
    static func hostCount(_ headers: HTTPHeaders) -> Int {
        var count = 0
        for (name, value) in headers where name.utf8.count == 4 && name.utf8.elementsEqual("host".utf8, by: { $0 | 0x20 == $1 }) {
            count += value.utf8.contains(UInt8(ascii: ",")) ? 2 : 1
        }
        return count
    }

    /// The head's size as sent: request line and header lines.
    static func headBytes(_ head: HTTPRequestHead) -> Int {
        var bytes = head.method.rawValue.utf8.count + 1 + head.uri.utf8.count + 11
        for (name, value) in head.headers { bytes += name.utf8.count + value.utf8.count + 4 }
        return bytes + 2
    }

    /// RFC 9110 §5.5: no control characters but HTAB. The same rule async-http-client
    /// applies before sending, so nothing accepted here fails there.
    static func isSendableValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 == UInt8(ascii: "\t") || ($0 >= 0x20 && $0 != 0x7F) }
    }

    /// A header name for a message: names are tokens (NIO's parser enforces it), cut short.
    private static func printableName(_ name: String) -> String { String(name.prefix(64)) }

    /// `/path?query` as is; `http://host/path?query` (absolute form, RFC 9112 §3.2.2) as
    /// `/path?query`, the authority dropped (the relay's upstream decides where it goes);
    /// anything else (authority form, asterisk form, other schemes): nil.
    static func originForm(_ target: String) -> String? {
        let bytes = target.utf8
        guard let first = bytes.first else { return nil }
        if first == UInt8(ascii: "/") { return target }
        for scheme in ["http://", "https://"] {
            guard bytes.count >= scheme.utf8.count,
                zip(bytes, scheme.utf8).allSatisfy({ ($0 | 0x20) == $1 || $0 == $1 })
            else { continue }
            let afterScheme = bytes.index(bytes.startIndex, offsetBy: scheme.utf8.count)
            let rest = bytes[afterScheme...]
            guard let end = rest.firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") }) else {
                return rest.isEmpty ? nil : "/"
            }
            if end == afterScheme { return nil }  // no authority
            let tail = String(Substring(bytes[end...]))
            return tail.hasPrefix("?") ? "/" + tail : tail
        }
        return nil
    }
}
