/// An error of the relay, with a stable code (for logs and tests) and a message
/// that says what happened and what to do about it.
public struct RelayError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }

        public static let invalidRemoteAddress = Code(name: "invalid_remote_address")
        public static let invalidHeaders = Code(name: "invalid_headers")
        public static let invalidListenAddress = Code(name: "invalid_listen_address")
        public static let bindFailed = Code(name: "bind_failed")
        public static let upstreamStatus = Code(name: "upstream_status")
        public static let upstreamTransport = Code(name: "upstream_transport")
        public static let misconfigured = Code(name: "misconfigured")
    }

    public var code: Code
    public var message: String
    /// What raised it, as a value: callers can tell a bind failure's `EADDRINUSE` from
    /// other socket errors.
    public var underlying: (any Error)?

    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    /// Equal in code and message, and in the underlying error's description.
    public static func == (lhs: RelayError, rhs: RelayError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message
            && lhs.underlying.map { String(describing: $0) } == rhs.underlying.map { String(describing: $0) }
    }

    public var description: String {
        if let underlying { return "\(message) (\(code): \(underlying))" }
        return "\(message) (\(code))"
    }
}
