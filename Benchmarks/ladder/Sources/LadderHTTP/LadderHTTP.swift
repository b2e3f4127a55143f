// What the NIO probes share: a minimal HTTP/1.1 client on one connection to the Extensions
// API (NIOPosix + NIOHTTP1, no Foundation), and an HTTP/1.1 listener on 127.0.0.1 port 0
// (the relay binds its listener before it registers).
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

public struct LadderError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public struct Response: Sendable {
    public var head: HTTPResponseHead
    public var body: ByteBuffer
}

struct Request: Sendable {
    var head: HTTPRequestHead
    var body: ByteBuffer?
    var response: EventLoopPromise<Response>
}

/// Writes a request and answers its promise with the response; requests are answered in order.
final class Exchange: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Request
    typealias OutboundOut = HTTPClientRequestPart

    private var waiting = CircularBuffer<EventLoopPromise<Response>>()
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        waiting.append(request.response)
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        if let body = request.body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        context.write(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
        case .body(var part):
            body.writeBuffer(&part)
        case .end:
            if let head, let promise = waiting.popFirst() { promise.succeed(Response(head: head, body: body)) }
            head = nil
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(LadderError("the API closed the connection"))
        context.fireChannelInactive()
    }

    private func failAll(_ error: any Error) {
        while let promise = waiting.popFirst() { promise.fail(error) }
    }
}

/// The Extensions API's address (AWS_LAMBDA_RUNTIME_API) and a connection to it.
public final class ExtensionsClient: Sendable {
    public let api: String
    let channel: any Channel

    public static func connect(group: any EventLoopGroup) -> EventLoopFuture<ExtensionsClient> {
        guard let pointer = getenv("AWS_LAMBDA_RUNTIME_API") else {
            return group.next().makeFailedFuture(LadderError("AWS_LAMBDA_RUNTIME_API is not set"))
        }
        let api = String(cString: pointer)
        guard let colon = api.lastIndex(of: ":"), let port = Int(api[api.index(after: colon)...]) else {
            return group.next().makeFailedFuture(LadderError("bad AWS_LAMBDA_RUNTIME_API \(api)"))
        }
        return ClientBootstrap(group: group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(Exchange())
                }
            }
            .connect(host: String(api[..<colon]), port: port)
            .map { ExtensionsClient(api: api, channel: $0) }
    }

    init(api: String, channel: any Channel) {
        self.api = api
        self.channel = channel
    }

    func send(_ method: HTTPMethod, _ path: String, headers: [(String, String)], body: String? = nil) -> EventLoopFuture<Response> {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: api)
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        var buffer: ByteBuffer?
        if let body {
            buffer = ByteBuffer(string: body)
            head.headers.add(name: "Content-Type", value: "application/json")
            head.headers.add(name: "Content-Length", value: String(body.utf8.count))
        }
        let promise = channel.eventLoop.makePromise(of: Response.self)
        channel.writeAndFlush(Request(head: head, body: buffer, response: promise)).cascadeFailure(to: promise)
        return promise.futureResult
    }

    /// POST /register; the Lambda-Extension-Identifier it answers.
    public func register(name: String) -> EventLoopFuture<String> {
        send(.POST, "/2020-01-01/extension/register", headers: [("Lambda-Extension-Name", name)], body: #"{"events":["SHUTDOWN"]}"#)
            .flatMapThrowing { response in
                guard response.head.status == .ok, let identifier = response.head.headers.first(name: "Lambda-Extension-Identifier") else {
                    throw LadderError("register answered \(response.head.status)")
                }
                return identifier
            }
    }

    /// GET /event/next until the event is SHUTDOWN.
    public func nextUntilShutdown(identifier: String) -> EventLoopFuture<Void> {
        send(.GET, "/2020-01-01/extension/event/next", headers: [("Lambda-Extension-Identifier", identifier)])
            .flatMap { response in
                if String(buffer: response.body).contains(#""SHUTDOWN""#) { return self.channel.eventLoop.makeSucceededVoidFuture() }
                return self.nextUntilShutdown(identifier: identifier)
            }
    }

    public func close() -> EventLoopFuture<Void> { channel.close() }
}

/// Answers every request 200 with an empty body.
final class OK: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "0")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// An HTTP/1.1 server on 127.0.0.1, port chosen by the kernel.
public func bindListener(group: any EventLoopGroup) -> EventLoopFuture<any Channel> {
    ServerBootstrap(group: group)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                try channel.pipeline.syncOperations.addHandler(OK())
            }
        }
        .bind(host: "127.0.0.1", port: 0)
}
