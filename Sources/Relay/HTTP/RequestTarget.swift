import GoCompatibility
import RelayJSON

/// Where a request goes, parsed from its absolute URL: what the connection pool keys on
/// (scheme, host, port) and what the request line and `Host` header carry.
public struct RequestOrigin: Hashable, Sendable, CustomStringConvertible {
    public enum Scheme: String, Sendable { case http, https }

    public var scheme: Scheme
    /// Lowercased; an IPv6 literal without its brackets (as the resolver and TLS want it).
    public var host: String
    public var port: Int
    /// `host[:port]` as written in the URL (brackets kept): the `Host` header's value.
    public var authority: String

    public var description: String { "\(scheme.rawValue)://\(authority)" }

    /// The name sent in TLS's SNI and checked against the certificate; nil for an IP
    /// literal, which NIOSSL then checks against the certificate's IP addresses.
    var serverNameIndication: String? { IPAddress(host) == nil ? host : nil }
}

/// An absolute `http(s)://[user@]host[:port][/path][?query]` URL split for sending.
/// Parsed by hand (as `RemoteEndpoint` is): the relay keeps to no Foundation.
public struct RequestURL: Sendable, Equatable {
    public var origin: RequestOrigin
    /// The request target in origin form, `/` when the URL has no path.
    public var pathAndQuery: String

    public init?(_ url: String) {
        guard let schemeEnd = url.firstOccurrence(of: "://"), let scheme = RequestOrigin.Scheme(rawValue: url[..<schemeEnd.lowerBound].lowercased())
        else { return nil }
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        // Credentials in a URL are the caller's to turn into headers: never sent as written.
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        guard let (bracketedHost, portText) = try? splitAuthority(authority) else { return nil }
        let host = bracketedHost.hasPrefix("[") ? bracketedHost.dropFirst().dropLast() : bracketedHost
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" }) else { return nil }
        var port = scheme == .https ? 443 : 80
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else { return nil }
            port = value
        }
        var target = String(rest[authorityEnd...])
        if let fragment = target.firstIndex(of: "#") { target = String(target[..<fragment]) }
        if target.isEmpty || target.hasPrefix("?") { target = "/" + target }
        origin = RequestOrigin(scheme: scheme, host: host.lowercased(), port: port, authority: String(authority))
        pathAndQuery = target
    }
}

/// Why an authority could not be split into host and port.
enum AuthoritySplitError: Error {
    case unclosedIPv6Literal
    case textAfterIPv6Literal
}

/// `host[:port]` (an authority without its user info) split at the port's colon; an IPv6
/// literal keeps its brackets. The one split of an authority, for `RemoteEndpoint` and
/// `RequestURL`; each checks the host and port by its own rules.
func splitAuthority(_ authority: Substring) throws(AuthoritySplitError) -> (host: Substring, port: Substring?) {
    if authority.hasPrefix("[") {
        guard let close = authority.firstIndex(of: "]") else { throw .unclosedIPv6Literal }
        let after = authority[authority.index(after: close)...]
        if after.isEmpty { return (authority[...close], nil) }
        guard after.hasPrefix(":") else { throw .textAfterIPv6Literal }
        return (authority[...close], after.dropFirst())
    }
    if let colon = authority.lastIndex(of: ":") { return (authority[..<colon], authority[authority.index(after: colon)...]) }
    return (authority, nil)
}

/// `Basic base64(user:password)` (RFC 7617).
func basicAuthorizationValue(user: String, password: String) -> String {
    "Basic " + Base64.encode(Array("\(user):\(password)".utf8))
}
