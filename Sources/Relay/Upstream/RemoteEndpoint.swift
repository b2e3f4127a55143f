import GoCompatibility

/// Where uploads are relayed to: the parsed `PYROSCOPE_REMOTE_ADDRESS`.
///
/// Parsed by hand rather than with Foundation's URL so the relay keeps to
/// FoundationEssentials and so every rejection has a precise reason.
public struct RemoteEndpoint: Sendable, Equatable, CustomStringConvertible {
    public enum Scheme: String, Sendable { case http, https }

    public var scheme: Scheme
    /// Host as it goes into a URL: IPv6 literals keep their brackets.
    public var host: String
    public var port: Int?
    /// Base path without a trailing slash; empty for none. Raw (percent-encoded) form.
    public var basePath: String
    /// Credentials written into the address (`https://user:pass@host`), percent-decoded.
    /// Used as basic auth when nothing else provides an Authorization header, as Go's
    /// HTTP client does with `URL.User`.
    public var userInfo: (user: String, password: String)?

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.scheme == rhs.scheme && lhs.host == rhs.host && lhs.port == rhs.port
            && lhs.basePath == rhs.basePath && lhs.userInfo?.user == rhs.userInfo?.user
            && lhs.userInfo?.password == rhs.userInfo?.password
    }

    /// `host[:port]` as sent in the `Host` header: the port only when the address names one.
    public var authority: String {
        if let port { return "\(host):\(port)" }
        return host
    }

    /// scheme://authority — the part of every upstream URL before the path.
    public var origin: String { "\(scheme.rawValue)://\(authority)" }

    public var description: String { redactedDescription }

    /// The address with any password replaced, safe to log.
    public var redactedDescription: String {
        let credentials = userInfo.map { "\(percentEncode($0.user, allowed: .userInfo)):***@" } ?? ""
        return "\(scheme.rawValue)://\(credentials)\(authority)\(basePath)"
    }

    public init(scheme: Scheme, host: String, port: Int? = nil, basePath: String = "", userInfo: (user: String, password: String)? = nil) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.basePath = basePath
        self.userInfo = userInfo
    }

    /// Parses an absolute http(s) URL. A query or fragment is rejected rather than
    /// silently dropped: it would never reach the server.
    public init(parsing text: String) throws(RelayError) {
        func invalid(_ why: String) -> RelayError {
            RelayError(
                .invalidRemoteAddress,
                "PYROSCOPE_REMOTE_ADDRESS '\(RemoteEndpoint.redactForError(text))' is not usable: \(why); set it to the address of your Pyroscope server, e.g. https://profiles-prod-001.grafana.net"
            )
        }
        guard let schemeEnd = text.firstOccurrence(of: "://") else { throw invalid("it has no http:// or https:// scheme") }
        guard let scheme = Scheme(rawValue: text[..<schemeEnd.lowerBound].lowercased()) else {
            throw invalid("the scheme must be http or https")
        }
        var rest = Substring(text[schemeEnd.upperBound...])
        // Scalars, not Characters: the same answers without grapheme breaking and Unicode
        // property tables, which cost the first parse 0.3 M instructions of every cold start.
        if rest.utf8.contains(UInt8(ascii: "?")) || rest.utf8.contains(UInt8(ascii: "#")) {
            throw invalid("it must not carry a query or fragment")
        }
        if rest.unicodeScalars.contains(where: { $0 == " " || $0 == "\t" || Self.isNewline($0) }) {
            throw invalid("it contains white space")
        }

        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        rest = rest[authorityEnd...]

        var userInfo: (String, String)?
        if let at = authority.lastIndex(of: "@") {
            let info = authority[..<at]
            authority = authority[authority.index(after: at)...]
            let parts = info.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let user = percentDecode(String(parts[0])),
                let password = percentDecode(parts.count > 1 ? String(parts[1]) : "")
            else { throw invalid("its credentials are not valid percent-encoding") }
            userInfo = (user, password)
        }

        let host: Substring
        let portText: Substring?
        do {
            (host, portText) = try splitAuthority(authority)
        } catch {
            switch error {
            case .unclosedIPv6Literal: throw invalid("an IPv6 address lacks its closing ]")
            case .textAfterIPv6Literal: throw invalid("unexpected text after the IPv6 address")
            }
        }
        guard !host.isEmpty else { throw invalid("it has no host") }
        if !host.hasPrefix("["), !host.utf8.allSatisfy(Self.isHostNameByte) && !host.allSatisfy(Self.isHostNameCharacter) {
            throw invalid("the host '\(host)' contains characters a host name cannot have")
        }
        var port: Int?
        if let portText {
            guard !portText.isEmpty else { throw invalid("the port is empty") }
            guard portText.allSatisfy(\.isASCII), let value = Int(portText), (1...65535).contains(value) else {
                throw invalid("the port '\(portText)' is not a number from 1 to 65535")
            }
            port = value
        }

        var basePath = String(rest)
        while basePath.hasSuffix("/") { basePath.removeLast() }
        // Dot segments in the base path are resolved now, so request paths are only ever
        // joined onto a clean prefix.
        basePath = cleanRootedPath(basePath)
        if basePath == "/" { basePath = "" }

        self.init(scheme: scheme, host: String(host).lowercased(), port: port, basePath: basePath, userInfo: userInfo)
    }

    /// What `Character.isNewline` is true for.
    static func isNewline(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029: true
        default: false
        }
    }

    /// An ASCII letter, digit, `.`, `-` or `_`: a host name made of these needs no Unicode check.
    static func isHostNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default: false
        }
    }

    /// An internationalised host name: letters and numbers of any script.
    static func isHostNameCharacter(_ character: Character) -> Bool {
        character.isLetter || character.isNumber || character == "." || character == "-" || character == "_"
    }

    /// For error messages: hide a password written into the address.
    static func redactForError(_ text: String) -> String {
        guard let schemeEnd = text.firstOccurrence(of: "://") else { return text }
        let rest = text[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { return text }
        let info = rest[..<at]
        let user = info.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
        return String(text[..<schemeEnd.upperBound]) + user + ":***" + String(rest[at...])
    }
}
