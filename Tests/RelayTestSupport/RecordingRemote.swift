import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import RelayCore

/// A fake Pyroscope server for tests: records every request it receives (headers in
/// order, body bytes) and answers with whatever `respond` says. Binds 127.0.0.1 port 0.
public final class RecordingRemote: Sendable {
    public struct Request: Sendable {
        public var method: String
        public var uri: String
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]
        /// 1 for the first request on its connection, 2 for the next, ...
        public var indexOnConnection: Int = 1
        public var arrivedAt: ContinuousClock.Instant = .now

        public func values(_ name: String) -> [String] {
            headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
        }
        public func value(_ name: String) -> String? { values(name).first }
    }

    public enum Reply: Sendable {
        case status(HTTPResponseStatus, body: String = "")
        /// Waits before answering (slow remote).
        case delayed(Duration, HTTPResponseStatus)
        /// Answers with extra headers (e.g. Retry-After).
        case withHeaders(HTTPResponseStatus, [(String, String)])
        /// Closes the connection without answering, as a connection that died does.
        case reset
        /// Answers once `gate` opens: a remote that holds requests for as long as a test needs.
        case held(Gate, HTTPResponseStatus)
    }

    /// Opened once by a test; held answers then go out.
    public final class Gate: Sendable {
        private let state = NIOLockedValueBox(false)
        public init() {}
        public func open() { state.withLockedValue { $0 = true } }
        public var isOpen: Bool { state.withLockedValue { $0 } }
    }

    private let requests = Watched<[Request]>([])
    private let channel: any Channel
    public let port: Int

    private init(channel: any Channel) {
        self.channel = channel
        self.port = channel.localAddress!.port!
    }

    public var address: String { "http://127.0.0.1:\(port)" }

    /// - Parameter closeIdleAfter: close connections idle this long, as load balancers do;
    ///   a client frozen meanwhile finds its pooled connection dead at the thaw.
    /// - Parameter answerEarly: asked when a request's head arrives (the body empty): a
    ///   status answers at once and closes the connection without reading the body, as
    ///   Python's `http.server` and nginx do for a request they refuse.
    public static func start(
        closeIdleAfter: Duration? = nil, answerEarly: @escaping @Sendable (Request) -> HTTPResponseStatus? = { _ in nil },
        respond: @escaping @Sendable (Request) -> Reply = { _ in .status(.ok) }
    ) async throws
        -> RecordingRemote
    {
        let box = NIOLockedValueBox<RecordingRemote?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let closeIdleAfter {
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: TimeAmount(closeIdleAfter)))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(
                        RecordingHandler(respond: respond, answerEarly: answerEarly) { request in
                            box.withLockedValue { $0 }?.record(request)
                        })
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let remote = RecordingRemote(channel: channel)
        box.withLockedValue { $0 = remote }
        return remote
    }

    /// Runs `body` with a started remote and always stops it.
    public static func with<T>(
        closeIdleAfter: Duration? = nil,
        answerEarly: @escaping @Sendable (Request) -> HTTPResponseStatus? = { _ in nil },
        respond: @escaping @Sendable (Request) -> Reply = { _ in .status(.ok) },
        _ body: (RecordingRemote) async throws -> T
    ) async throws -> T {
        let remote = try await start(closeIdleAfter: closeIdleAfter, answerEarly: answerEarly, respond: respond)
        do {
            let result = try await body(remote)
            try? await remote.stop()
            return result
        } catch {
            try? await remote.stop()
            throw error
        }
    }

    public func stop() async throws { try await channel.close() }

    public var received: [Request] { requests.value }

    private func record(_ request: Request) { requests.withLock { $0.append(request) } }

    /// Waits until at least `count` requests arrived, or `timeout` passed (then returns what
    /// is there): awaited, so a test checking that no further request comes returns as soon
    /// as one does.
    @discardableResult
    public func waitForRequests(_ count: Int, timeout: Duration = .seconds(30)) async -> [Request] {
        _ = await requests.becomes(within: timeout) { $0.count >= count }
        return received
    }
}

private final class RecordingHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let respond: @Sendable (RecordingRemote.Request) -> RecordingRemote.Reply
    let answerEarly: @Sendable (RecordingRemote.Request) -> HTTPResponseStatus?
    let record: @Sendable (RecordingRemote.Request) -> Void
    var head: HTTPRequestHead?
    var body: [UInt8] = []
    var requestsOnConnection = 0
    /// Answered early: the rest of the request is ignored until the close.
    var answered = false

    init(
        respond: @escaping @Sendable (RecordingRemote.Request) -> RecordingRemote.Reply,
        answerEarly: @escaping @Sendable (RecordingRemote.Request) -> HTTPResponseStatus?,
        record: @escaping @Sendable (RecordingRemote.Request) -> Void
    ) {
        self.respond = respond
        self.answerEarly = answerEarly
        self.record = record
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent, head == nil {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if answered { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            requestsOnConnection += 1
            let request = RecordingRemote.Request(
                method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name, $0.value) }, body: [],
                indexOnConnection: requestsOnConnection)
            if let status = answerEarly(request) {
                answered = true
                record(request)
                let text = "refused early\n"
                let headers = HTTPHeaders([("content-length", "\(text.utf8.count)"), ("connection", "close")])
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            }
        case .body(let buffer):
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head else { return }
            let request = RecordingRemote.Request(
                method: head.method.rawValue, uri: head.uri,
                headers: head.headers.map { ($0.name, $0.value) }, body: body, indexOnConnection: requestsOnConnection)
            record(request)
            let reply = respond(request)
            var extraHeaders: [(String, String)] = []
            var gate: RecordingRemote.Gate?
            let (delay, status, text): (Duration?, HTTPResponseStatus, String)
            switch reply {
            case .status(let code, let message): (delay, status, text) = (nil, code, message)
            case .delayed(let wait, let code): (delay, status, text) = (wait, code, "")
            case .held(let held, let code):
                (delay, status, text) = (nil, code, "")
                gate = held
            case .withHeaders(let code, let headers):
                (delay, status, text) = (nil, code, "")
                extraHeaders = headers
            case .reset:
                context.close(promise: nil)
                self.head = nil
                return
            }
            let keepAlive = head.isKeepAlive
            let replyHeaders = extraHeaders
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let write: @Sendable () -> Void = {
                let (handler, context) = loopBound.value
                var headers = HTTPHeaders([("content-length", "\(text.utf8.count)")])
                for (name, value) in replyHeaders { headers.add(name: name, value: value) }
                if !keepAlive { headers.add(name: "connection", value: "close") }
                context.write(handler.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
                if !text.isEmpty { context.write(handler.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil) }
                context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
                if !keepAlive { context.close(promise: nil) }
            }
            if let gate {
                let channel = context.channel
                @Sendable func writeWhenOpen() {
                    guard channel.isActive else { return }
                    if gate.isOpen { write() } else { channel.eventLoop.scheduleTask(in: .milliseconds(10)) { writeWhenOpen() } }
                }
                writeWhenOpen()
            } else if let delay {
                let (seconds, attoseconds) = delay.components
                context.eventLoop.scheduleTask(in: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)) { write() }
            } else {
                write()
            }
            self.head = nil
        }
    }
}
