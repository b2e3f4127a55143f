import Logging
import NIOCore
import NIOPosix

/// The relay's core, built in one place for the executable and the tests: the delivery
/// pipeline, the ingress listener and the forwarder, with the one HTTP client of the
/// process. The Lambda extension adds its own services around it.
public struct Relay: Sendable {
    public let configuration: RelayConfiguration
    public let pipeline: DeliveryPipeline
    public let ingress: IngressServer
    public let forwarder: UploadForwarder
    /// Set by Lambda's SHUTDOWN event; the forwarder drains until it.
    public let drainDeadline: DrainDeadline
    /// Sends upstream; owns the process's one HTTP client.
    public let uploader: any Uploader
    /// The `__session_id__` of legacy uploads; renewed after a SnapStart restore.
    public let sessionIdentity: SessionIdentity
    /// The proxy upstream requests go through, if any.
    public let upstreamProxy: ProxyServer?

    public var counters: RelayCounters { pipeline.counters }
    public var clock: any RelayClock { pipeline.clock }

    /// The core services for a `ServiceGroup`. Services stop in reverse order: ingress stops
    /// accepting first, then the forwarder drains what was accepted. Each is named: without a
    /// name, swift-service-lifecycle describes the service by reflecting over all its fields,
    /// which cost about 1 ms of init in the Swift runtime's first conformance lookups.
    package var services: [ServiceGroup.ServiceConfiguration] {
        [.init(service: forwarder, serviceName: "forwarder"), .init(service: ingress, serviceName: "ingress")]
    }

    /// Builds the relay and runs `body` with it. The uploader (an HTTP client unless one is
    /// given) is shut down on every path. The listener is not bound yet: `ingress.bind()`.
    /// - Parameter credentialSource: credentials fetched after start (Secrets Manager, SSM).
    public static func with<T: Sendable>(
        _ configuration: RelayConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        uploader: (any Uploader)? = nil, clock: any RelayClock = SystemClock(), credentialSource: (any UpstreamCredentialSource)? = nil,
        logger: Logger, _ body: (Relay) async throws -> T
    ) async throws -> T {
        let proxy = configuration.network.proxy(reaching: configuration.remote)
        let uploader =
            uploader
            ?? HTTPClientUploader(
                eventLoopGroup: group, timeout: configuration.upstreamTimeout, workers: configuration.workers, network: configuration.network,
                proxyHost: proxy?.host)
        let relay = Relay(
            configuration: configuration, group: group, uploader: uploader, proxy: proxy, credentialSource: credentialSource, clock: clock,
            logger: logger)
        let result: Result<T, any Error>
        do { result = .success(try await body(relay)) } catch { result = .failure(error) }
        await uploader.shutdown()
        return try result.get()
    }

    private init(
        configuration: RelayConfiguration, group: any EventLoopGroup, uploader: any Uploader, proxy: ProxyServer?,
        credentialSource: (any UpstreamCredentialSource)?, clock: any RelayClock, logger: Logger
    ) {
        // The Go extension's component names, so existing log queries keep working.
        var ingressLogger = logger
        ingressLogger[metadataKey: LogKey.comp] = "controller"
        var forwardLogger = logger
        forwardLogger[metadataKey: LogKey.comp] = "orchestrator"
        self.configuration = configuration
        pipeline = DeliveryPipeline(
            configuration: .init(
                maxItems: configuration.queueMaxItems, maxBytes: configuration.queueMaxBytes, spoolDirectory: configuration.spoolDirectory,
                spoolMaxBytes: configuration.spoolMaxBytes, acceptsUploads: configuration.remote != nil),
            clock: clock, logger: forwardLogger)
        ingress = IngressServer(
            group: group, addresses: configuration.listenAddresses, pipeline: pipeline,
            routes: [.healthz, .metrics(pipeline: pipeline)], maxBodyBytes: configuration.maxBodyBytes, limits: configuration.ingress,
            connectionCap: configuration.ingress.connectionCap(upstreamConnections: configuration.drainConcurrency), logger: ingressLogger)
        drainDeadline = DrainDeadline()
        self.uploader = uploader
        upstreamProxy = proxy
        let failureReporter = UpstreamFailureReporter(
            context: .init(
                remote: configuration.remote, credentialSettings: configuration.credentialSettings, timeout: configuration.upstreamTimeout,
                proxy: proxy, trust: configuration.network.trust))
        let session = SessionIdentity(configuration.sessionID)
        sessionIdentity = session
        forwarder = UploadForwarder(
            pipeline: pipeline, uploader: uploader,
            builder: configuration.remote.map { UpstreamRequestBuilder(configuration: configuration, remote: $0, session: session) },
            workers: configuration.workers, drainConcurrency: configuration.drainConcurrency, drainTimeout: configuration.drainTimeout,
            drainDeadline: drainDeadline,
            retryPolicy: configuration.retryPolicy, resendsUnknownFate: configuration.resendsUnknownFate, clock: clock, senderLoops: group,
            credentialSource: credentialSource,
            failureReporter: failureReporter, logger: forwardLogger)
    }
}
