import NIOHTTP1

/// Credentials the relay puts on every upstream request, replacing the client's own.
public enum UpstreamCredentials: Sendable, Equatable, CustomStringConvertible {
    /// Nothing configured: the client's own Authorization header passes through.
    case none
    case bearer(token: String)
    case basic(user: String, password: String)

    /// Never the secret itself: values like this end up in debug logs.
    public var description: String {
        switch self {
        case .none: "none"
        case .bearer: "bearer(***)"
        case .basic(let user, _): "basic(\(user):***)"
        }
    }

    /// The secret parts, for log redaction.
    public var secrets: [String] {
        switch self {
        case .none: []
        case .bearer(let token): [token]
        case .basic(let user, let password): [password, basicAuthorizationValue(user: user, password: password)]
        }
    }
}

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

/// Everything the relay core needs, with defaults for every field.
public struct RelayConfiguration: Sendable {
    /// nil when PYROSCOPE_REMOTE_ADDRESS is unusable: the relay still answers its clients
    /// (it must never break the function) but refuses uploads as `misconfigured`.
    public var remote: RemoteEndpoint?
    public var credentials: UpstreamCredentials
    /// Sent as `X-Scope-OrgID` when not empty.
    public var tenantID: String
    /// PYROSCOPE_HTTP_HEADERS, applied last so they override everything else.
    public var extraHeaders: [(name: String, value: String)]
    /// Bound on one upstream request, from connect to the last response byte.
    public var upstreamTimeout: Duration
    /// Concurrent upstream senders.
    public var workers: Int
    /// Largest upload body accepted; larger gets `413`.
    public var maxBodyBytes: Int
    /// Queue bounds: whichever is reached first makes the relay answer `503`.
    public var queueMaxItems: Int
    public var queueMaxBytes: Int
    public var listenAddresses: [ListenAddress]
    public var sessionID: SessionID
    /// How long a graceful shutdown may spend sending what is queued.
    public var drainTimeout: Duration
    public var retryPolicy: RetryPolicy
    /// Where uploads go when the memory queue is full; nil: no spool (full means 503).
    public var spoolDirectory: String?
    public var spoolMaxBytes: Int

    /// Memory is the function's own: keep the relay's share small and spill to disk.
    public static let defaultQueueMaxBytes = 8 << 20
    /// Lambda's /tmp (512 MB by default) is the only writable place.
    public static let defaultSpoolDirectory = "/tmp/pyroscope-lambda-extension-spool"
    public static let defaultSpoolMaxBytes = 64 << 20

    public static let defaultRemote = try! RemoteEndpoint(parsing: "https://profiles-prod-001.grafana.net")

    public init(
        remote: RemoteEndpoint? = RelayConfiguration.defaultRemote,
        credentials: UpstreamCredentials = .none,
        tenantID: String = "",
        extraHeaders: [(name: String, value: String)] = [],
        upstreamTimeout: Duration = .seconds(10),
        workers: Int = 5,
        maxBodyBytes: Int = 8 << 20,
        queueMaxItems: Int = 1024,
        queueMaxBytes: Int = RelayConfiguration.defaultQueueMaxBytes,
        listenAddresses: [ListenAddress] = ListenAddress.loopback(port: 4040),
        sessionID: SessionID = .random(),
        drainTimeout: Duration? = nil,
        retryPolicy: RetryPolicy = RetryPolicy(),
        spoolDirectory: String? = nil,
        spoolMaxBytes: Int = RelayConfiguration.defaultSpoolMaxBytes
    ) {
        self.remote = remote
        self.credentials = credentials
        self.tenantID = tenantID
        self.extraHeaders = extraHeaders
        self.upstreamTimeout = upstreamTimeout
        self.workers = workers
        self.maxBodyBytes = maxBodyBytes
        self.queueMaxItems = queueMaxItems
        self.queueMaxBytes = queueMaxBytes
        self.listenAddresses = listenAddresses
        self.sessionID = sessionID
        self.drainTimeout = drainTimeout ?? upstreamTimeout
        self.retryPolicy = retryPolicy
        self.spoolDirectory = spoolDirectory
        self.spoolMaxBytes = spoolMaxBytes
    }
}

func basicAuthorizationValue(user: String, password: String) -> String {
    "Basic " + base64Encode(Array("\(user):\(password)".utf8))
}

func base64Encode(_ bytes: [UInt8]) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out = [UInt8]()
    out.reserveCapacity((bytes.count + 2) / 3 * 4)
    var index = 0
    while index + 2 < bytes.count {
        let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
        out += [alphabet[Int(value >> 18 & 63)], alphabet[Int(value >> 12 & 63)], alphabet[Int(value >> 6 & 63)], alphabet[Int(value & 63)]]
        index += 3
    }
    let remaining = bytes.count - index
    if remaining == 1 {
        let value = UInt32(bytes[index]) << 16
        out += [alphabet[Int(value >> 18 & 63)], alphabet[Int(value >> 12 & 63)], UInt8(ascii: "="), UInt8(ascii: "=")]
    } else if remaining == 2 {
        let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
        out += [alphabet[Int(value >> 18 & 63)], alphabet[Int(value >> 12 & 63)], alphabet[Int(value >> 6 & 63)], UInt8(ascii: "=")]
    }
    return String(decoding: out, as: UTF8.self)
}
