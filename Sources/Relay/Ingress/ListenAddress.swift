/// An address the relay listens on.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Loopback on both families, so `localhost:4040` works whichever a client resolves.
    public static func loopback(port: Int) -> [ListenAddress] {
        [ListenAddress(host: "127.0.0.1", port: port), ListenAddress(host: "::1", port: port)]
    }

    /// Parses `host:port`, `[v6]:port`, `localhost:port` (both loopbacks) or `:port`
    /// (every interface, as Go's `:4040`).
    public static func parse(_ text: String) throws(RelayError) -> [ListenAddress] {
        func invalid(_ why: String) -> RelayError {
            RelayError(.invalidListenAddress, "PYROSCOPE_LISTEN_ADDRESS '\(text)' is not usable: \(why); use host:port such as 127.0.0.1:4040")
        }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw invalid("an IPv6 address must be written [address]:port")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw invalid("it has no port") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { throw invalid("an IPv6 address must be written [address]:port") }
        }
        guard portText.allSatisfy(\.isASCII), let port = Int(portText), (0...65535).contains(port) else {
            throw invalid("the port '\(portText)' is not a number from 0 to 65535")
        }
        switch host {
        case "localhost": return loopback(port: port)
        case "": return [ListenAddress(host: "0.0.0.0", port: port), ListenAddress(host: "::", port: port)]
        default: return [ListenAddress(host: String(host), port: port)]
        }
    }

    /// True when the address accepts connections from other machines.
    public var isPubliclyReachable: Bool {
        !(host.hasPrefix("127.") || host == "::1")
    }
}
