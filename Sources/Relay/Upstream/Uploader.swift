import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// What the remote answered.
public struct UpstreamResponse: Sendable {
    public var status: HTTPResponseStatus
    /// The start of the response body, for log lines about failures.
    public var bodyExcerpt: String
    /// The `Retry-After` header, if any.
    public var retryAfter: String?

    public init(status: HTTPResponseStatus, bodyExcerpt: String = "", retryAfter: String? = nil) {
        self.status = status
        self.bodyExcerpt = bodyExcerpt
        self.retryAfter = retryAfter
    }
}

/// Why an attempt got no answer; uploaders throw these so the retry policy can tell a
/// dead connection (retry at once, fresh) from a slow remote (back off).
public enum UploadFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case timeout(String)
    /// `requestSent`: the connection broke after the whole request went out, so the remote
    /// may have stored it.
    case connection(String, requestSent: Bool = false)
    /// No connection could be made (DNS, refused, TLS verification, proxy): see
    /// `UploadFailure(classifying:proxyHost:)`.
    case unreachable(UpstreamAttemptCause, String)

    public var description: String {
        switch self {
        case .timeout(let detail): "timeout: \(detail)"
        case .connection(let detail, _): "connection failed: \(detail)"
        case .unreachable(let cause, let detail): "\(cause.rawValue): \(detail)"
        }
    }
}

/// The upstream network boundary; tests swap in fakes.
public protocol Uploader: Sendable {
    /// Sends one request; throws `UploadFailure` (or CancellationError) when there is no
    /// answer, returns any status otherwise.
    func send(_ request: UpstreamRequest) async throws -> UpstreamResponse
    /// Closes pooled connections, so the next request connects anew (after a SnapStart
    /// restore, connections made before the snapshot are not valid).
    func discardConnections() async
    /// Closes everything; no request is sent after it.
    func shutdown() async
}

extension Uploader {
    public func discardConnections() async {}
    public func shutdown() async {}
}

/// The real uploader: the relay's `HTTP1Client`, on the relay's event loops.
///
/// Senders run on the event loops (see `UploadForwarder`): the client prefers a pooled
/// connection on the caller's loop, so a request, its connection and its answer stay on
/// that loop and an upload costs no thread hop.
public final class HTTPClientUploader: Uploader {
    /// Failure bodies are read only this far: enough to log, never a memory risk.
    static let excerptLimit = 512

    let client: HTTP1Client
    let timeout: Duration
    /// The proxy's host, when requests go through one: its failures are told apart.
    let proxyHost: String?

    public init(client: HTTP1Client, timeout: Duration, proxyHost: String? = nil) {
        self.client = client
        self.timeout = timeout
        self.proxyHost = proxyHost
    }

    /// An uploader with a client of its own, for the relay's remote.
    /// - Parameter proxyHost: the proxy `network` chose for the remote, if any.
    public convenience init(
        eventLoopGroup: any EventLoopGroup, timeout: Duration, workers: Int, network: NetworkConfiguration = .direct, proxyHost: String? = nil
    ) {
        let client = HTTP1Client(eventLoopGroup: eventLoopGroup, configuration: Self.clientConfiguration(timeout: timeout, workers: workers, network: network))
        self.init(client: client, timeout: timeout, proxyHost: proxyHost)
    }

    /// Client settings for relaying: connect within the upload timeout, as many idle
    /// connections as senders, no retry of its own (every request counts against
    /// PYROSCOPE_RETRY_MAX_ATTEMPTS; the forwarder decides reconnects).
    public static func clientConfiguration(timeout: Duration, workers: Int, network: NetworkConfiguration = .direct) -> HTTP1ClientConfiguration {
        HTTP1ClientConfiguration(connectTimeout: timeout, maxIdleConnectionsPerOrigin: max(1, workers), retriesDeadPooledConnection: false, network: network)
    }

    public func discardConnections() async { client.discardConnections() }

    public func shutdown() async { await client.shutdown() }

    public func send(_ request: UpstreamRequest) async throws -> UpstreamResponse {
        if let refusal = UpstreamHeadGuard.refusal(for: request) { return refusal }
        do {
            let response = try await client.execute(
                HTTP1Request(method: request.method, url: request.url, headers: request.headers, body: request.body),
                deadline: .now() + TimeAmount(timeout), bodyLimit: Self.excerptLimit)
            if (200..<300).contains(response.status.code) { return UpstreamResponse(status: response.status) }
            return UpstreamResponse(
                status: response.status, bodyExcerpt: String(buffer: response.body), retryAfter: response.headers.first(name: "retry-after"))
        } catch let error as HTTP1ClientError {
            switch error.code {
            case .deadlineExceeded: throw UploadFailure.timeout("\(error)")
            case .answerLost: throw UploadFailure.connection("\(error)", requestSent: true)
            case .cancelled, .shutDown:
                // The caller's cancellation (the drain deadline), or the connections closed
                // under the request (`discardConnections` after a SnapStart restore).
                if Task.isCancelled { throw CancellationError() }
                throw UploadFailure.connection("\(error): its connection was closed")
            default: throw UploadFailure(classifying: error, proxyHost: proxyHost)
            }
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw UploadFailure(classifying: error, proxyHost: proxyHost)
        }
    }

    /// An error for a log line. None of the client's errors carry header values.
    static func describe(_ error: any Error) -> String { "\(error)" }
}

/// No request head over 48 KiB is sent: servers refuse far smaller ones (nginx: 8 KiB lines,
/// 32 KiB in all by default; Go's net/http: 1 MiB), and a head that large can only come from
/// settings or a client gone wrong. It is answered as the remote would, 431, and dropped as
/// a rejection. (The guard began as a shield against async-http-client 1.37, which trapped
/// on heads over 64 KiB on pooled connections; the relay's own client does not, and the
/// limit is kept as the relay's rule.)
enum UpstreamHeadGuard {
    /// Well below 64 KiB.
    static let maxHeadBytes = 48 << 10

    /// The request line and headers as they go on the wire (without the client's additions).
    static func headBytes(_ request: UpstreamRequest) -> Int {
        var bytes = request.method.rawValue.utf8.count + request.url.utf8.count + 12
        for (name, value) in request.headers { bytes += name.utf8.count + value.utf8.count + 4 }
        return bytes + 2
    }

    /// A final answer for a request that must not be sent, as the remote would give it.
    static func refusal(for request: UpstreamRequest) -> UpstreamResponse? {
        let bytes = headBytes(request)
        guard bytes > maxHeadBytes else { return nil }
        return UpstreamResponse(
            status: .requestHeaderFieldsTooLarge,
            bodyExcerpt: "not sent: the request head would be \(bytes) bytes, over the \(maxHeadBytes) the relay sends")
    }
}
