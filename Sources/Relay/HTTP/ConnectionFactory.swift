import GoCompatibility
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS

/// Makes a connection ready for HTTP/1.1: TCP to the origin or its proxy, the proxy's
/// `CONNECT` tunnel for HTTPS, the TLS handshake (SNI and certificate verification), then
/// the HTTP codec. A connection is handed out only once all of it succeeded, so a failed
/// handshake is a connect failure (`unreachable`), never a broken request.
struct ConnectionFactory: Sendable {
    let connectTimeout: Duration
    let trust: TrustConfiguration

    func connect(_ key: PoolKey, generation: Int, on loop: any EventLoop) -> EventLoopFuture<HTTP1Connection> {
        let (host, port): (String, Int)
        switch key.route {
        case .direct: (host, port) = (key.origin.host, key.origin.port)
        case .forwardProxy(let proxy), .tunnel(let proxy): (host, port) = (proxy.host, proxy.port)
        }
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(TimeAmount(connectTimeout))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
        // An IP literal (the Lambda API's 127.0.0.1:9001, a proxy given by address) is
        // connected to directly: SwiftNIO's resolver and Happy Eyeballs cost 1.4 million
        // instructions on the way to POST /register (callgrind).
        let connected: EventLoopFuture<any Channel>
        if IPAddress(host) != nil, let address = try? SocketAddress(ipAddress: host, port: port) {
            connected = bootstrap.connect(to: address)
        } else {
            connected = bootstrap.connect(host: host, port: port)
        }
        return connected.flatMap { channel in
            let ready: EventLoopFuture<Void>
            switch key.route {
            case .tunnel(let proxy): ready = Self.openTunnel(channel, to: key.origin, through: proxy).flatMap { startTLS(channel, key.origin) }
            case .direct where key.origin.scheme == .https: ready = startTLS(channel, key.origin)
            case .direct, .forwardProxy: ready = channel.eventLoop.makeSucceededVoidFuture()
            }
            return ready.flatMapThrowing {
                let handler = HTTP1ResponseHandler(host: key.origin.host)
                let sync = channel.pipeline.syncOperations
                // The codec without NIO's header validator: `HTTP1Client` checks each head
                // before it is written (one handler, and its conformance lookups, fewer).
                try sync.addHandler(HTTPRequestEncoder())
                try sync.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
                try sync.addHandler(handler)
                return HTTP1Connection(channel: channel, key: key, generation: generation, handler: handler)
            }.flatMapErrorThrowing { error in
                channel.close(promise: nil)
                throw error
            }
        }
    }

    /// TLS with the origin: the context (trust roots) is made at the first HTTPS connection
    /// of the process, not at start: parsing the system bundle costs about 5 ms of CPU.
    private func startTLS(_ channel: any Channel, _ origin: RequestOrigin) -> EventLoopFuture<Void> {
        do {
            let context = try TLSContextCache.shared.context(for: trust)
            let waiter = TLSHandshakeWaiter(promise: channel.eventLoop.makePromise())
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: origin.serverNameIndication))
            try sync.addHandler(waiter)
            let bound = NIOLoopBound(waiter, eventLoop: channel.eventLoop)
            return waiter.promise.futureResult.flatMap { channel.pipeline.syncOperations.removeHandler(bound.value) }
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
    }

    /// `CONNECT host:port` to the proxy; the tunnel is open at its 2xx.
    private static func openTunnel(_ channel: any Channel, to origin: RequestOrigin, through proxy: ProxyServer) -> EventLoopFuture<Void> {
        let handler = ProxyTunnelHandler(origin: origin, proxy: proxy, promise: channel.eventLoop.makePromise())
        do {
            try channel.pipeline.syncOperations.addHandler(handler)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        let bound = NIOLoopBound(handler, eventLoop: channel.eventLoop)
        return handler.promise.futureResult.flatMap { channel.pipeline.syncOperations.removeHandler(bound.value) }
    }
}

/// Completes when the TLS handshake is done; fails with the handshake's error.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let promise: EventLoopPromise<Void>

    init(promise: EventLoopPromise<Void>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { promise.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(HTTP1ClientError(.connectionClosed, "the TLS handshake ended with the connection closed"))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        promise.fail(HTTP1ClientError(.connectionClosed, "the TLS handshake did not complete"))
    }
}

/// Writes `CONNECT` and reads the proxy's answer head by hand: the only exchange with the
/// proxy, too small for an HTTP codec that would then have to be taken out again.
final class ProxyTunnelHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    let promise: EventLoopPromise<Void>
    private let origin: RequestOrigin
    private let proxy: ProxyServer
    private var answer = ByteBuffer()
    /// The head of an answer is short; a proxy sending more is not one the relay understands.
    static let maxAnswerHeadBytes = 16 << 10

    init(origin: RequestOrigin, proxy: ProxyServer, promise: EventLoopPromise<Void>) {
        self.origin = origin
        self.proxy = proxy
        self.promise = promise
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let target = origin.host.contains(":") ? "[\(origin.host)]:\(origin.port)" : "\(origin.host):\(origin.port)"
        var head = "CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n"
        if let user = proxy.user {
            head += "Proxy-Authorization: \(basicAuthorizationValue(user: user, password: proxy.password ?? ""))\r\n"
        }
        head += "\r\n"
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: head)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var part = unwrapInboundIn(data)
        answer.writeBuffer(&part)
        let bytes = answer.readableBytesView
        guard let end = bytes.firstOccurrence(of: [13, 10, 13, 10]) else {
            if answer.readableBytes > Self.maxAnswerHeadBytes { fail(context, .proxyRefused, "the proxy \(proxy) answered CONNECT with no end of head") }
            return
        }
        let statusLine = String(decoding: bytes[bytes.startIndex..<end.lowerBound].prefix { $0 != 13 }, as: UTF8.self)
        let fields = statusLine.split(separator: " ", maxSplits: 2)
        let status = fields.count >= 2 ? Int(fields[1]) ?? 0 : 0
        switch status {
        case 200..<300 where end.upperBound == bytes.endIndex: promise.succeed()
        case 200..<300: fail(context, .proxyRefused, "the proxy \(proxy) sent data before the tunnel was open")
        case 407: fail(context, .proxyAuthenticationRequired, "the proxy \(proxy) wants credentials (407): \(statusLine)")
        default: fail(context, .proxyRefused, "the proxy \(proxy) refused CONNECT to \(origin.authority): \(statusLine)")
        }
    }

    private func fail(_ context: ChannelHandlerContext, _ code: HTTP1ClientError.Code, _ message: String) {
        promise.fail(HTTP1ClientError(code, message))
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(HTTP1ClientError(.proxyRefused, "the proxy \(proxy) closed the connection during CONNECT"))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        promise.fail(HTTP1ClientError(.proxyRefused, "the tunnel through \(proxy) did not open"))
    }
}
