import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#else
    import Darwin
#endif

/// The relay's HTTP/1.1 listener. `bind()` is separate from `run()` so the caller can be
/// sure the port accepts connections before it tells Lambda it is ready (and can report
/// a port already in use as an init error).
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

    /// Binds every address. A loopback pair (127.0.0.1 and ::1) tolerates the IPv6 half
    /// failing, for hosts without IPv6; any other failure is thrown.
    @discardableResult
    public func bind() async throws(RelayError) -> [SocketAddress] {
        let context = self.context
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            // A client that shuts down its sending side after the request still gets the
            // answer (on the spool path it comes after the read side has ended).
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let connection = ConnectionGuard(shared: context)
                    let operations = channel.pipeline.syncOperations
                    try operations.addHandler(connection)
                    // The parser's own bounds, as the policy's: past them it stops reading
                    // and the handler answers 431. Parse errors are answered by the handler.
                    var decoderLimits = NIOHTTPDecoderLimitConfiguration()
                    decoderLimits.maxHeaderFieldSize = context.limits.maxHeadBytes
                    decoderLimits.maxHeaderListSize = context.limits.maxHeadBytes
                    decoderLimits.maxHeaderFieldCount = context.limits.maxHeaderCount
                    try operations.configureHTTPServerPipeline(
                        withErrorHandling: false, withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits)
                    try operations.addHandler(IngressHandler(context: context, connection: connection))
                }
            }
        var bound: [any Channel] = []
        var boundPort: Int?
        for address in addresses {
            // With port 0 the first bind picks a port and the loopback twin takes the same.
            let port = address.port == 0 ? (boundPort ?? 0) : address.port
            do {
                let channel = try await bootstrap.bind(host: address.host, port: port).get()
                bound.append(channel)
                boundPort = boundPort ?? channel.localAddress?.port
            } catch {
                let optionalTwin = address.host == "::1" && addresses.contains { $0.host == "127.0.0.1" } && !bound.isEmpty
                if optionalTwin {
                    context.logger.debug("IPv6 loopback unavailable, listening on 127.0.0.1 only", metadata: ["error": "\(error)"])
                    continue
                }
                for channel in bound { try? await channel.close() }
                let listen = ListenAddress(host: address.host, port: port)
                if (error as? IOError)?.errnoCode == EACCES {
                    // Lambda runs extensions as an unprivileged user: no port below 1024.
                    throw RelayError(
                        .bindFailed,
                        "cannot listen on \(listen): this user may not bind it (ports below 1024 need privileges Lambda does not give). Set PYROSCOPE_LISTEN_ADDRESS to a port from 1024 up",
                        underlying: error)
                }
                throw RelayError(
                    .bindFailed, "cannot listen on \(listen): is another process using the port? Set PYROSCOPE_LISTEN_ADDRESS to a free one",
                    underlying: error)
            }
        }
        channels.withLock { $0 = bound }
        let local = bound.compactMap(\.localAddress)
        let printable = local.map { address in
            let ip = address.ipAddress ?? "\(address)"
            return ip.contains(":") ? "[\(ip)]:\(address.port ?? 0)" : "\(ip):\(address.port ?? 0)"
        }
        context.logger.info(
            "Relay listening",
            metadata: ["addresses": "\(printable.joined(separator: ","))", "max_connections": .stringConvertible(context.limiter.limit)])
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
