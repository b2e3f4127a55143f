import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#else
    import Darwin
#endif

/// The relay's HTTP/1.1 listener. Listening (`ListeningSockets.open`) is separate from
/// serving (`bind(adopting:)`) and from `run()`, so the caller can be sure the port accepts
/// connections before it tells Lambda it is ready, report a port already in use as an init
/// error, and build the rest of the relay after registering.
public final class IngressServer: Service, Sendable, CustomStringConvertible {
    /// What every connection's handler shares.
    struct Context: Sendable {
        let pipeline: DeliveryPipeline
        let routes: [LocalRoute]
        let maxBodyBytes: Int
        let limits: IngressLimits
        let headPolicy: RequestHeadPolicy
        let limiter: ConnectionLimiter
        /// Refusals repeat per request under a flood: a few lines per reason and window.
        let refusalLogLimiter = LogRateLimiter()
        let logger: Logger

        var counters: RelayCounters { pipeline.counters }
    }

    private let group: any EventLoopGroup
    private let addresses: [ListenAddress]
    private let context: Context
    private let channels = Mutex<[any Channel]>([])

    /// - Parameter connectionCap: open client connections at most (see `IngressLimits`).
    public init(
        group: any EventLoopGroup, addresses: [ListenAddress], pipeline: DeliveryPipeline, routes: [LocalRoute] = [.healthz],
        maxBodyBytes: Int, limits: IngressLimits = IngressLimits(), connectionCap: Int, logger: Logger
    ) {
        self.group = group
        self.addresses = addresses
        self.context = Context(
            pipeline: pipeline, routes: routes, maxBodyBytes: maxBodyBytes, limits: limits, headPolicy: RequestHeadPolicy(limits: limits),
            limiter: ConnectionLimiter(limit: connectionCap, slowHeadGrace: limits.slowHeadGrace), logger: logger)
    }

    /// Open client connections now.
    public var openConnections: Int { context.limiter.openCount }

    var limiter: ConnectionLimiter { context.limiter }

    public var description: String { "IngressServer(\(addresses.map(\.description).joined(separator: ",")))" }

    /// Binds every address and serves on them (`ListeningSockets.open`'s rules and messages).
    @discardableResult
    public func bind() async throws(RelayError) -> [SocketAddress] {
        try await bind(adopting: try ListeningSockets.open(addresses, logger: context.logger))
    }

    /// A client connection's handlers, in order: its guard (timeouts, the connection cap),
    /// the answer to an HTTP/2 connection, the HTTP/1.1 codec bounded by the policy's limits, the ingress handler.
    static func addHandlers(to operations: ChannelPipeline.SynchronousOperations, context: Context) throws {
        let connection = ConnectionGuard(shared: context)
        try operations.addHandler(connection)
        try operations.addHandler(HTTP2Refusal(shared: context))
        // The parser's own bounds, as the policy's: past them it stops reading and the
        // handler answers 431. Parse errors are answered by the handler.
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderFieldSize = context.limits.maxHeadBytes
        decoderLimits.maxHeaderListSize = context.limits.maxHeadBytes
        decoderLimits.maxHeaderFieldCount = context.limits.maxHeaderCount
        // What configureHTTPServerPipeline adds, one by one: its array of handlers is cast
        // element by element at the first connection (0.5 M instructions, callgrind), in the
        // first invocation of every cold start. Its response header validator is left out:
        // the relay's answers carry only headers it makes itself; HEAD is answered without a
        // body by IngressHandler, as the encoder would when set up there.
        try operations.addHandler(HTTPResponseEncoder(configuration: .init()))
        try operations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, limitConfiguration: decoderLimits)))
        try operations.addHandler(HTTPServerPipelineHandler())
        try operations.addHandler(IngressHandler(context: context, connection: connection))
    }

    /// Serves on sockets already listening: made before registering with Lambda, adopted
    /// once the rest of the relay is built.
    @discardableResult
    public func bind(adopting sockets: ListeningSockets) async throws(RelayError) -> [SocketAddress] {
        let context = self.context
        let bootstrap = ServerBootstrap(group: group)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            // A client that shuts down its sending side after the request still gets the
            // answer (on the spool path it comes after the read side has ended).
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try Self.addHandlers(to: channel.pipeline.syncOperations, context: context) }
            }
        var bound: [any Channel] = []
        let listening = sockets.take()
        for (index, socket) in listening.enumerated() {
            do {
                bound.append(try await bootstrap.withBoundSocket(socket.descriptor).get())
            } catch {
                for channel in bound { try? await channel.close() }
                // The rest were never handed over. The failed one may be closed by SwiftNIO
                // already (it closes a channel whose set-up failed), and a second close could
                // hit a descriptor reused since: it is left to the process's end, which follows.
                for rest in listening[(index + 1)...] { close(rest.descriptor) }
                throw RelayError(.bindFailed, "cannot serve on \(socket.address): \(error)", underlying: error)
            }
        }
        channels.withLock { $0 = bound }
        let local = listening.map(\.local)
        let printable = local.map { address in
            let ip = address.ipAddress ?? "\(address)"
            return ip.contains(":") ? "[\(ip)]:\(address.port ?? 0)" : "\(ip):\(address.port ?? 0)"
        }
        context.logger.info(
            "Relay listening",
            metadata: [LogKey.addresses: "\(printable.joined(separator: ","))", LogKey.maxConnections: .stringConvertible(context.limiter.limit)])
        return local
    }

    /// Serves until graceful shutdown or cancellation, then stops accepting connections.
    public func run() async throws {
        if channels.withLock({ $0.isEmpty }) { try await bind() }
        try? await gracefulShutdown()
        let bound = channels.withLock { channels in
            defer { channels.removeAll() }
            return channels
        }
        for channel in bound { try? await channel.close() }
        context.logger.debug("Relay stopped listening")
    }
}
