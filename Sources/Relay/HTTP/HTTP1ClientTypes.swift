import NIOCore
import NIOHTTP1

/// A request for `HTTP1Client`: an absolute URL, headers as they go out (the client adds
/// `Host` when absent and frames the body with `Content-Length`), and a body.
public struct HTTP1Request: Sendable {
    public var method: HTTPMethod
    public var url: String
    public var headers: HTTPHeaders
    public var body: ByteBuffer?

    public init(method: HTTPMethod, url: String, headers: HTTPHeaders = [:], body: ByteBuffer? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

/// What came back: the head, and the body up to the request's limit (the rest is read and
/// discarded so the connection can be reused).
public struct HTTP1Response: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: ByteBuffer
    /// The body was longer than the limit: `body` holds its start.
    public var bodyTruncated: Bool
    /// The answer came before the request was written whole (a 413 for the body, a 414 for
    /// the target), or the connection broke after a non-2xx head: it is still the outcome.
    public var early: Bool
}

/// Why a request got no answer. Errors of NIO (connect, resolve) and NIOSSL (handshake,
/// verification) pass through as they are, so callers can tell their causes apart.
public struct HTTP1ClientError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// Not an absolute http(s) URL.
        case invalidURL = "invalid_url"
        /// No whole answer by the request's deadline.
        case deadlineExceeded = "deadline_exceeded"
        /// The connection closed (or broke) before the answer.
        case connectionClosed = "connection_closed"
        /// The connection broke after the whole request was sent, before the answer: the
        /// server may have acted on it (its fate is unknown).
        case answerLost = "answer_lost"
        /// The proxy answered CONNECT with something other than 2xx.
        case proxyRefused = "proxy_refused"
        /// The proxy wants (other) credentials: 407.
        case proxyAuthenticationRequired = "proxy_authentication_required"
        /// The request cannot be sent as it is (a line break in a header value, say).
        case invalidRequest = "invalid_request"
        /// The answer was not HTTP/1.1 the client can read.
        case invalidResponse = "invalid_response"
        /// The caller's task was cancelled.
        case cancelled
        /// The client was shut down, or its connections discarded, under the request.
        case shutDown = "shut_down"
    }

    public var code: Code
    /// What happened, with the host; never a header value.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// Settings of one `HTTP1Client`.
public struct HTTP1ClientConfiguration: Sendable {
    /// For each new connection: TCP, then the proxy's CONNECT and the TLS handshake, all
    /// within the request's deadline too.
    public var connectTimeout: Duration
    /// A pooled connection unused this long is closed (servers close theirs after 60-75 s;
    /// closing first avoids sending into a connection the server is closing).
    public var idleTimeout: Duration
    /// Idle connections kept per origin. The relay has at most `workers` requests in
    /// flight, so this bounds the connections it keeps open.
    public var maxIdleConnectionsPerOrigin: Int
    /// Send a request once more on a fresh connection when a pooled one was found dead
    /// before any answer. Off for uploads, whose every request counts against
    /// PYROSCOPE_RETRY_MAX_ATTEMPTS (the forwarder reconnects itself); on for the
    /// Extensions API and AWS, whose calls may be repeated.
    public var retriesDeadPooledConnection: Bool
    /// The proxy and the trust roots.
    public var network: NetworkConfiguration

    public init(
        connectTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(55), maxIdleConnectionsPerOrigin: Int = 8,
        retriesDeadPooledConnection: Bool = false, network: NetworkConfiguration = .direct
    ) {
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.maxIdleConnectionsPerOrigin = maxIdleConnectionsPerOrigin
        self.retriesDeadPooledConnection = retriesDeadPooledConnection
        self.network = network
    }
}

/// How a connection reaches its origin.
enum ConnectionRoute: Hashable, Sendable {
    case direct
    /// Plain HTTP through a proxy: requests in absolute form.
    case forwardProxy(ProxyServer)
    /// HTTPS through a proxy: a `CONNECT` tunnel, then TLS with the origin.
    case tunnel(ProxyServer)
}

/// What a pooled connection is for: no connection serves two of these.
struct PoolKey: Hashable, Sendable {
    var origin: RequestOrigin
    var route: ConnectionRoute
}
