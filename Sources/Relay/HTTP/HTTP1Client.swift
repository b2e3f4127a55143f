import NIOCore
import NIOHTTP1
import NIOPosix

/// The relay's one HTTP/1.1 client, for its three callers: the remote Pyroscope, Lambda's
/// Extensions and Telemetry APIs, and AWS (Secrets Manager, SSM, credentials).
///
/// What it does is what they need and no more: keep-alive connections pooled per origin;
/// connect timeouts and a deadline per request; TLS with SNI and certificate verification
/// against the system roots or the CA settings; `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`
/// (CONNECT for https, absolute form for http); a response body limit; an answer that comes
/// before the request is written is the outcome. No redirects (they would carry the
/// credentials elsewhere), no decompression (bodies pass through untouched), no HTTP/2.
/// It replaced async-http-client, which brought HTTP/2, SOCKS, tracing and configuration
/// and half of the start-up cost (README, "What it costs the function").
public final class HTTP1Client: Sendable {
    public let configuration: HTTP1ClientConfiguration
    private let group: any EventLoopGroup
    private let pool: ConnectionPool
    private let factory: ConnectionFactory
    /// Parsed URLs with their route: uploads go to a handful of URLs.
    private let targets = BoundedMemo<String, Target>()

    struct Target: Sendable {
        var url: RequestURL
        var route: ConnectionRoute
    }

    public init(eventLoopGroup: any EventLoopGroup, configuration: HTTP1ClientConfiguration = .init()) {
        self.configuration = configuration
        group = eventLoopGroup
        pool = ConnectionPool(maxIdlePerKey: configuration.maxIdleConnectionsPerOrigin, idleTimeout: configuration.idleTimeout)
        factory = ConnectionFactory(connectTimeout: configuration.connectTimeout, trust: configuration.network.trust)
    }

    private func target(for url: String) -> Target? {
        try? targets.value(for: url) { url in
            guard let parsed = RequestURL(url) else { throw HTTP1ClientError(.invalidURL, "not an absolute http(s) URL") }
            let origin = parsed.origin
            let proxy = configuration.network.proxy.proxy(for: URLTarget(scheme: origin.scheme.rawValue, host: origin.host, port: origin.port))
            let route: ConnectionRoute = proxy.map { origin.scheme == .https ? .tunnel($0) : .forwardProxy($0) } ?? .direct
            return Target(url: parsed, route: route)
        }
    }

    /// Sends `request` and returns the answer, whatever its status.
    /// - Parameters:
    ///   - deadline: the whole exchange, connecting included; nil: none (a long poll).
    ///   - bodyLimit: bytes of the answer's body kept; the rest is read and discarded.
    /// - Throws: `HTTP1ClientError`, or NIO's and NIOSSL's errors for connect and TLS failures.
    public func execute(_ request: HTTP1Request, deadline: NIODeadline? = nil, bodyLimit: Int = 1 << 20) async throws -> HTTP1Response {
        guard let target = target(for: request.url) else {
            throw HTTP1ClientError(.invalidURL, "'\(RemoteEndpoint.redactForError(request.url))' is not an absolute http(s) URL")
        }
        let head = Self.head(for: request, target: target)
        if let problem = RequestHeadCheck.problem(in: head) {
            throw HTTP1ClientError(.invalidRequest, "not sent to \(target.url.origin.authority): \(problem)")
        }
        let key = PoolKey(origin: target.url.origin, route: target.route)
        var retried = false
        while true {
            if Task.isCancelled { throw HTTP1ClientError(.cancelled, "the request was cancelled") }
            let preferred = group.any()
            let pooled = try pool.take(key, preferring: preferred)
            let execution = RequestExecution(loop: pooled?.channel.eventLoop ?? preferred)
            do {
                return try await withTaskCancellationHandler {
                    try await execution.run(
                        pooled: pooled, key: key, head: head, body: request.body, bodyLimit: bodyLimit, deadline: deadline, pool: pool,
                        factory: factory
                    ).get()
                } onCancel: {
                    execution.cancel()
                }
            } catch let error
                where execution.wentOutOnPooledConnection && !retried && configuration.retriesDeadPooledConnection && Self.isDeadConnection(error)
            {
                retried = true
            }
        }
    }

    /// `execute` for API calls, whose answer is read whole: one longer than `maxBodyBytes`
    /// is an error (`invalidResponse`), not a body cut short.
    public func executeWhole(_ request: HTTP1Request, deadline: NIODeadline?, maxBodyBytes: Int) async throws -> HTTP1Response {
        let response = try await execute(request, deadline: deadline, bodyLimit: maxBodyBytes)
        guard !response.bodyTruncated else {
            let host = RequestURL(request.url)?.origin.authority ?? "the server"
            throw HTTP1ClientError(.invalidResponse, "the answer from \(host) is over \(maxBodyBytes) bytes")
        }
        return response
    }

    /// A connection that died under a request before any answer.
    static func isDeadConnection(_ error: any Error) -> Bool {
        if let error = error as? HTTP1ClientError { return error.code == .connectionClosed || error.code == .answerLost }
        return error is IOError
    }

    static func head(for request: HTTP1Request, target: Target) -> HTTPRequestHead {
        var headers = request.headers
        if !headers.contains(name: "host") { headers.add(name: "Host", value: target.url.origin.authority) }
        headers.remove(name: "transfer-encoding")
        if let body = request.body {
            headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
        } else if request.method == .POST || request.method == .PUT || request.method == .PATCH {
            headers.replaceOrAdd(name: "Content-Length", value: "0")
        }
        var uri = target.url.pathAndQuery
        if case .forwardProxy(let proxy) = target.route {
            uri = target.url.origin.description + uri
            if let user = proxy.user {
                headers.replaceOrAdd(name: "Proxy-Authorization", value: basicAuthorizationValue(user: user, password: proxy.password ?? ""))
            }
        }
        return HTTPRequestHead(version: .http1_1, method: request.method, uri: uri, headers: headers)
    }

    /// Closes pooled connections, so the next request connects anew (after a SnapStart
    /// restore, connections made before the snapshot are not valid). Connections in use are
    /// closed when their request ends.
    public func discardConnections() { pool.discardAll() }

    /// Closes every connection; requests after it fail with `shutDown`.
    public func shutdown() async {
        for closed in pool.shutdown() { try? await closed.get() }
    }
}

/// One request on one event loop: a pooled or new connection, the exchange, the deadline
/// and cancellation; all its state is touched on `loop` only.
private final class RequestExecution: @unchecked Sendable {
    let loop: any EventLoop
    private let promise: EventLoopPromise<HTTP1Response>
    private var finished = false
    private var connection: HTTP1Connection?
    /// Whether the request was given a pooled connection (one found closed is replaced by a
    /// new one: a failure to make that is not a dead pooled connection). Set on the loop
    /// before the result completes; read once the caller has the result.
    private(set) var wentOutOnPooledConnection = false
    private var deadlineTask: Scheduled<Void>?

    init(loop: any EventLoop) {
        self.loop = loop
        promise = loop.makePromise()
    }

    func run(
        pooled: HTTP1Connection?, key: PoolKey, head: HTTPRequestHead, body: ByteBuffer?, bodyLimit: Int, deadline: NIODeadline?,
        pool: ConnectionPool, factory: ConnectionFactory
    ) -> EventLoopFuture<HTTP1Response> {
        loop.execute { [self] in
            if let deadline {
                deadlineTask = loop.scheduleTask(deadline: deadline) { [self] in
                    finish(.failure(HTTP1ClientError(.deadlineExceeded, "no answer from \(key.origin.authority) within the timeout")))
                    connection?.close()
                }
            }
            let ready: EventLoopFuture<HTTP1Connection>
            if let pooled, !pooled.isClosed {
                wentOutOnPooledConnection = true
                ready = loop.makeSucceededFuture(pooled)
            } else {
                pooled?.close()
                let generation = pool.generation
                ready = factory.connect(key, generation: generation, on: loop).flatMapThrowing { made in
                    guard pool.register(made) else {
                        made.close()
                        throw HTTP1ClientError(.shutDown, "the HTTP client was shut down while connecting")
                    }
                    return made
                }
            }
            ready.whenComplete { [self] result in
                switch result {
                case .failure(let error): finish(.failure(error))
                case .success(let connection):
                    guard !finished else { return pool.release(connection, reusable: true) }
                    self.connection = connection
                    connection.send(head, body: body, bodyLimit: bodyLimit).whenComplete { [self] result in
                        switch result {
                        case .success(let exchange):
                            pool.release(connection, reusable: exchange.reusable && !finished)
                            finish(.success(exchange.response))
                        case .failure(let error):
                            connection.close()
                            finish(.failure(error))
                        }
                    }
                }
            }
        }
        return promise.futureResult
    }

    func cancel() {
        loop.execute { [self] in
            finish(.failure(HTTP1ClientError(.cancelled, "the request was cancelled")))
            connection?.close()
        }
    }

    private func finish(_ result: Result<HTTP1Response, any Error>) {
        guard !finished else { return }
        finished = true
        deadlineTask?.cancel()
        promise.completeWith(result)
    }
}
