import GoCompatibility

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Scheme, host and port of a URL: all the proxy decision needs.
public struct URLTarget: Sendable, Equatable {
    public var scheme: String
    /// Lowercased; IPv6 literals without brackets.
    public var host: String
    public var port: Int

    public init(scheme: String, host: String, port: Int) {
        self.scheme = scheme
        self.host = host
        self.port = port
    }

    /// `http(s)://[user@]host[:port][/...]` (split by `RequestURL`, as the client sends it);
    /// nil for anything else.
    public init?(_ url: String) {
        guard let origin = RequestURL(url)?.origin else { return nil }
        self.init(scheme: origin.scheme.rawValue, host: origin.host, port: origin.port)
    }
}

/// An HTTP proxy from `HTTPS_PROXY`/`HTTP_PROXY`: `[http://][user:password@]host[:port]`.
public struct ProxyServer: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String?
    public var password: String?

    /// Without the password: safe to log.
    public var description: String {
        let credentials = user.map { "\($0):***@" } ?? ""
        return "http://\(credentials)\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    /// Parses the variable's value; the error says why it cannot be used (never the password).
    public init(parsing text: String) throws(ProxyParseError) {
        var url = text
        if !url.includes("://") { url = "http://" + url }  // as Go: a bare host:port is an HTTP proxy
        let scheme = url[..<url.firstOccurrence(of: "://")!.lowerBound].lowercased()
        guard scheme == "http" else {
            throw ProxyParseError(reason: "only http:// proxies are supported (the connection to the proxy is plain HTTP; HTTPS is tunnelled through it)")
        }
        guard let target = URLTarget(url) else { throw ProxyParseError(reason: "it is not host:port or http://host:port") }
        host = target.host
        port = target.port
        let afterScheme = url[url.firstOccurrence(of: "://")!.upperBound...]
        let authority = afterScheme.prefix { $0 != "/" }
        if let at = authority.lastIndex(of: "@") {
            let info = authority[..<at]
            let parts = info.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let decodedUser = percentDecode(String(parts[0])), let decodedPassword = percentDecode(parts.count > 1 ? String(parts[1]) : "")
            else { throw ProxyParseError(reason: "its credentials are not valid percent-encoding") }
            user = decodedUser
            password = decodedPassword
        }
    }

    /// A proxy setting's value with any password hidden, for messages.
    public static func redacted(_ text: String) -> String {
        RemoteEndpoint.redactForError(text.includes("://") ? text : "http://" + text)
    }

    /// The proxy's password and the `Proxy-Authorization` value: never logged.
    public var secrets: [String] {
        guard let user else { return [] }
        return [password ?? "", basicAuthorizationValue(user: user, password: password ?? "")].filter { !$0.isEmpty }
    }
}

public struct ProxyParseError: Error, Sendable, Equatable {
    public var reason: String
}

/// `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` as Go's `http.ProxyFromEnvironment` reads them,
/// decided per destination when a client is made. Loopback, link-local (instance metadata)
/// and the Lambda API host never go through a proxy.
public struct ProxyConfiguration: Sendable, Equatable {
    public var https: ProxyServer?
    public var http: ProxyServer?
    public var noProxy: NoProxyRule
    /// Hosts that are always reached directly (the Lambda Runtime API's).
    public var directHosts: Set<String>

    public init(https: ProxyServer? = nil, http: ProxyServer? = nil, noProxy: NoProxyRule = NoProxyRule(""), directHosts: Set<String> = []) {
        self.https = https
        self.http = http
        self.noProxy = noProxy
        self.directHosts = directHosts
    }

    public static let direct = ProxyConfiguration()

    /// The proxy for requests to `target`, or nil to connect directly.
    public func proxy(for target: URLTarget) -> ProxyServer? {
        guard let server = target.scheme == "https" ? https : http else { return nil }
        if target.host == "localhost" || directHosts.contains(target.host) { return nil }
        if let address = IPAddress(target.host), address.isLoopback || address.isLinkLocal { return nil }
        if noProxy.matches(host: target.host, port: target.port) { return nil }
        return server
    }

    /// The proxy's secrets, for log redaction.
    public var secrets: [String] { (https?.secrets ?? []) + (http?.secrets ?? []) }
}

/// `NO_PROXY`: comma-separated entries; `*` matches everything; an IP address or CIDR range
/// matches addresses; `example.com` matches it and its subdomains, `.example.com` only
/// subdomains; `host:port` matches that port only (Go's rules).
public struct NoProxyRule: Sendable, Equatable {
    enum Entry: Sendable, Equatable {
        case everything
        case network(IPAddress, prefix: Int, port: Int?)
        case domain(String, subdomainsOnly: Bool, port: Int?)
    }
    let entries: [Entry]

    public init(_ text: String) {
        var entries: [Entry] = []
        for raw in text.split(separator: ",") {
            var entry = String(raw).trimmingGoSpace().lowercased()
            if entry.isEmpty { continue }
            if entry == "*" {
                entries.append(.everything)
                continue
            }
            if let slash = entry.firstIndex(of: "/"), let address = IPAddress(String(entry[..<slash])),
                let prefix = Int(entry[entry.index(after: slash)...]), (0...address.bytes.count * 8).contains(prefix)
            {
                entries.append(.network(address, prefix: prefix, port: nil))
                continue
            }
            if let address = IPAddress(entry.hasPrefix("[") && entry.hasSuffix("]") ? String(entry.dropFirst().dropLast()) : entry) {
                entries.append(.network(address, prefix: address.bytes.count * 8, port: nil))
                continue
            }
            var port: Int?
            if let colon = entry.lastIndex(of: ":"), let value = Int(entry[entry.index(after: colon)...]) {
                port = value
                entry = String(entry[..<colon])
                if entry.hasPrefix("["), entry.hasSuffix("]"), let address = IPAddress(String(entry.dropFirst().dropLast())) {
                    entries.append(.network(address, prefix: address.bytes.count * 8, port: port))
                    continue
                }
                if let address = IPAddress(entry) {
                    entries.append(.network(address, prefix: address.bytes.count * 8, port: port))
                    continue
                }
            }
            if entry.hasPrefix("*.") { entry.removeFirst() }  // `*.example.com` as `.example.com`
            let subdomainsOnly = entry.hasPrefix(".")
            entries.append(.domain(subdomainsOnly ? String(entry.dropFirst()) : entry, subdomainsOnly: subdomainsOnly, port: port))
        }
        self.entries = entries
    }

    public func matches(host: String, port: Int) -> Bool {
        let host = host.lowercased()
        let address = IPAddress(host)
        for entry in entries {
            switch entry {
            case .everything:
                return true
            case .network(let network, let prefix, let entryPort):
                if let address, address.isWithin(network, prefix: prefix), entryPort == nil || entryPort == port { return true }
            case .domain(let domain, let subdomainsOnly, let entryPort):
                guard entryPort == nil || entryPort == port else { continue }
                if host.hasSuffix("." + domain) || (!subdomainsOnly && host == domain) { return true }
            }
        }
        return false
    }
}

/// An IPv4 or IPv6 address as bytes (inet_pton), for CIDR matching.
struct IPAddress: Sendable, Equatable {
    let bytes: [UInt8]

    init?(_ text: String) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
        } else if inet_pton(AF_INET6, text, &v6) == 1 {
            bytes = withUnsafeBytes(of: &v6) { Array($0) }
        } else {
            return nil
        }
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    func isWithin(_ network: IPAddress, prefix: Int) -> Bool {
        guard bytes.count == network.bytes.count else { return false }
        var remaining = prefix
        for index in bytes.indices where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if bytes[index] & mask != network.bytes[index] & mask { return false }
            remaining -= bits
        }
        return true
    }

    var isLoopback: Bool {
        bytes.count == 4 ? bytes[0] == 127 : bytes == Array(repeating: 0, count: 15) + [1]
    }

    /// 169.254.0.0/16 and fe80::/10: instance metadata and Lambda's credential endpoints.
    var isLinkLocal: Bool {
        bytes.count == 4 ? bytes[0] == 169 && bytes[1] == 254 : bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80
    }
}
