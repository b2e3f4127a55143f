import AsyncHTTPClient
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
    case connection(String)
    /// No connection could be made (DNS, refused, TLS verification, proxy): see
    /// `UploadFailure(classifying:proxyHost:)`.
    case unreachable(UpstreamAttemptCause, String)

    public var description: String {
        switch self {
        case .timeout(let detail): "timeout: \(detail)"
        case .connection(let detail): "connection failed: \(detail)"
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

/// The real uploader: one async-http-client for the process, on the relay's event loops.
///
/// Uses the client's `EventLoopFuture` API: called from a sender running on an event loop
/// (see `UploadForwarder`), the request, its connection and its answer all stay on that
/// loop, so an upload costs no thread hop. The async API would hop to the cooperative
/// pool and back for the response head and again for the body.
public final class HTTPClientUploader: Uploader {
    /// Failure bodies are read only this far: enough to log, never a memory risk.
    static let excerptLimit = 512

    /// The client in use; replaced by `discardConnections` (async-http-client has no call
    /// that closes a pool's idle connections).
    private let current: Mutex<HTTPClient>
    private let configuration: HTTPClient.Configuration
    private let eventLoopGroup: any EventLoopGroup
    let timeout: Duration
    /// The client's loops: only these may be named as a request's loop.
    private let clientLoops: Set<ObjectIdentifier>
    /// Parsed requests by method and URL: async-http-client parses a URL string with
    /// Foundation's `URL` for every request; uploads mostly go to a handful of URLs.
    private let templates = BoundedMemo<TemplateKey, HTTPClient.Request>()
    private struct TemplateKey: Hashable, Sendable {
        var method: String
        var url: String
    }

    /// The proxy's host, when requests go through one: its failures are told apart.
    let proxyHost: String?

    public init(eventLoopGroup: any EventLoopGroup, configuration: HTTPClient.Configuration, timeout: Duration, proxyHost: String? = nil) {
        self.eventLoopGroup = eventLoopGroup
        self.configuration = configuration
        self.current = Mutex(HTTPClient(eventLoopGroup: eventLoopGroup, configuration: configuration))
        self.timeout = timeout
        self.proxyHost = proxyHost
        self.clientLoops = Set(eventLoopGroup.makeIterator().map { ObjectIdentifier($0) })
    }

    var client: HTTPClient { current.withLock { $0 } }

    public func discardConnections() async {
        let replacement = HTTPClient(eventLoopGroup: eventLoopGroup, configuration: configuration)
        let previous = current.withLock { client in
            defer { client = replacement }
            return client
        }
        try? await previous.shutdown()
    }

    public func shutdown() async {
        try? await client.shutdown()
    }

    /// Client settings for relaying: no redirects (a redirect would re-send credentials
    /// elsewhere), no decompression (bodies pass through untouched).
    public static func clientConfiguration(timeout: Duration, workers: Int) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.timeout = .init(connect: .init(timeout), read: .init(timeout))
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(1, workers)
        // A failed connect (DNS, refused, TLS verification) fails the attempt at once, so it
        // is counted, explained and backed off by the relay's retry policy; the client's own
        // default retries it silently until the request deadline.
        configuration.connectionPool.retryConnectionEstablishment = false
        // No tracing is bootstrapped: without this each request still starts a no-op span
        // and formats its attributes.
        configuration.tracing.tracer = nil
        return configuration
    }

    public func send(_ request: UpstreamRequest) async throws -> UpstreamResponse {
        if let refusal = UpstreamHeadGuard.refusal(for: request) { return refusal }
        do {
            return try await attempt(request)
        } catch let error as HTTPClientError where [.deadlineExceeded, .readTimeout, .connectTimeout].contains(error) {
            throw UploadFailure.timeout("\(error)")
        } catch let error as HTTPClientError where error == .cancelled || error == .alreadyShutdown {
            // The caller's cancellation (the drain deadline), or the client closed under the
            // request (`discardConnections` after a SnapStart restore): a connection lost.
            if Task.isCancelled { throw CancellationError() }
            throw UploadFailure.connection("\(error): its connection was closed")
        } catch is CancellationError {
            throw CancellationError()
        } catch let failure as UploadFailure {
            throw failure
        } catch {
            throw UploadFailure(classifying: error, proxyHost: proxyHost)
        }
    }

    static func isCancellation(_ error: any Error) -> Bool {
        if error is CancellationError { return true }
        guard let error = error as? HTTPClientError else { return false }
        return error == .cancelled || error == .alreadyShutdown
    }

    /// An error for a log line. async-http-client's errors can carry header values
    /// (`invalidHeaderFieldValues(["Bearer <token>"])`): those are described without them.
    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError { return "HTTPClientError: \(error.shortDescription)" }
        return "\(error)"
    }

    private func attempt(_ request: UpstreamRequest) async throws -> UpstreamResponse {
        var outgoing = try templates.value(for: TemplateKey(method: request.method.rawValue, url: request.url)) {
            try HTTPClient.Request(url: $0.url, method: request.method)
        }
        outgoing.headers = request.headers
        outgoing.body = .byteBuffer(request.body)
        var preference = HTTPClient.EventLoopPreference.indifferent
        // `.delegate(on:)`, not `.delegateAndChannel(on:)`: the pool still prefers a
        // connection on this loop, but a request that requires one gets an "overflow"
        // connection that is closed after use, so every upload would connect anew.
        if let loop = MultiThreadedEventLoopGroup.currentEventLoop, clientLoops.contains(ObjectIdentifier(loop)) {
            preference = .delegate(on: loop)
        }
        let excerpt = ResponseExcerpt(limit: Self.excerptLimit)
        let task = client.execute(request: outgoing, delegate: excerpt, eventLoop: preference, deadline: .now() + TimeAmount(timeout))
        do {
            return try await withTaskCancellationHandler {
                try await task.futureResult.get()
            } onCancel: {
                task.cancel()
            }
        } catch {
            // A server may answer before it has read the request (a 413 for the body, a
            // 414 for the target) and close; writing the rest then fails. The answer is
            // the outcome: a 4xx is a rejection, not a connection failure to retry.
            // A cancelled request (the drain deadline, or the client shut down to reconnect)
            // stays cancelled whatever had arrived.
            if !Task.isCancelled, !Self.isCancellation(error), let early = excerpt.earlyAnswer { return early }
            throw error
        }
    }
}

/// Reads the answer: status and `Retry-After`, and for a failure the start of its body.
/// Called on the request's event loop; the lock is uncontended.
final class ResponseExcerpt: HTTPClientResponseDelegate {
    typealias Response = UpstreamResponse

    private struct State {
        var head: HTTPResponseHead?
        var excerpt = ByteBuffer()
    }
    private let limit: Int
    private let state = Mutex(State())

    init(limit: Int) { self.limit = limit }

    func didReceiveHead(task: HTTPClient.Task<UpstreamResponse>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        state.withLock { $0.head = head }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<UpstreamResponse>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        let limit = self.limit
        state.withLock { state in
            // Success bodies are read and discarded, so the connection can be reused.
            guard let status = state.head?.status, !(200..<300).contains(status.code), state.excerpt.readableBytes < limit else { return }
            var part = buffer.getSlice(at: buffer.readerIndex, length: min(buffer.readableBytes, limit - state.excerpt.readableBytes)) ?? buffer
            state.excerpt.writeBuffer(&part)
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    /// A non-2xx answer whose head arrived although the request then failed.
    var earlyAnswer: UpstreamResponse? {
        state.withLock { state in
            guard let head = state.head, head.status.code >= 300 else { return nil }
            return UpstreamResponse(status: head.status, bodyExcerpt: String(buffer: state.excerpt), retryAfter: head.headers.first(name: "retry-after"))
        }
    }

    func didFinishRequest(task: HTTPClient.Task<UpstreamResponse>) throws -> UpstreamResponse {
        try state.withLock { state in
            guard let head = state.head else { throw UploadFailure.connection("no response head") }
            if (200..<300).contains(head.status.code) { return UpstreamResponse(status: head.status) }
            return UpstreamResponse(
                status: head.status, bodyExcerpt: String(buffer: state.excerpt), retryAfter: head.headers.first(name: "retry-after"))
        }
    }
}

/// async-http-client 1.37 stops the process on a request head over the channel's 64 KiB
/// write-buffer high watermark on a pooled keep-alive connection with a body to send: the
/// head's write turns the channel unwritable and writable again within the same flush, the
/// request's state machine starts the body producer, and `headSent()` then fails its
/// precondition (HTTPRequestStateMachine.swift:813). The ingress bounds keep client heads
/// far below this; this guard makes sure no head (settings included) gets near it.
enum UpstreamHeadGuard {
    /// Well below 64 KiB: async-http-client adds a few headers of its own.
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
