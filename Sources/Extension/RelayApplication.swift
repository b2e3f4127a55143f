import AsyncHTTPClient
import Logging
import NIOCore
import NIOPosix
import RelayCore
import ServiceLifecycle

/// Wires the relay's services from settings and runs them until shutdown.
public struct RelayApplication: Sendable {
    public let settings: ExtensionSettings
    public let logger: Logger

    public init(settings: ExtensionSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// Runs until SIGTERM/SIGINT (dev mode), then drains the queue within the drain
    /// timeout. Returns the process exit code.
    public func run() async -> Int32 {
        let relay = settings.relay
        let group = MultiThreadedEventLoopGroup.singleton
        let counters = RelayCounters()
        let queue = UploadQueue(maxItems: relay.queueMaxItems, maxBytes: relay.queueMaxBytes)
        var ingressLogger = logger
        ingressLogger[metadataKey: "comp"] = "controller"
        var forwardLogger = logger
        forwardLogger[metadataKey: "comp"] = "orchestrator"

        let ingress = IngressServer(group: group, addresses: relay.listenAddresses, queue: queue, counters: counters,
                                    routes: [.healthz, .metrics(counters: counters, queue: queue)],
                                    maxBodyBytes: relay.maxBodyBytes, isRemoteUsable: relay.remote != nil, logger: ingressLogger)
        do {
            try await ingress.bind()
        } catch {
            logger.critical("Cannot start the relay: \(error.message)", metadata: ["error": "\(error)"])
            return 1
        }

        let client = HTTPClient(eventLoopGroup: group,
                                configuration: HTTPClientUploader.clientConfiguration(timeout: relay.upstreamTimeout, workers: relay.workers))
        let forwarder = UploadForwarder(
            queue: queue, uploader: HTTPClientUploader(client: client, timeout: relay.upstreamTimeout),
            builder: relay.remote.map { UpstreamRequestBuilder(configuration: relay, remote: $0) },
            counters: counters, workers: relay.workers, drainTimeout: relay.drainTimeout, logger: forwardLogger)

        if let remote = relay.remote {
            logger.info("Relaying uploads", metadata: ["remote": "\(remote.redactedDescription)", "workers": .stringConvertible(relay.workers)])
        }
        if !settings.devMode {
            logger.warning("Lambda lifecycle not available in this build: running the relay standalone, as in dev mode")
        }

        // Shutdown runs in reverse order: ingress stops accepting first, then the
        // forwarder drains what was accepted.
        let serviceGroup = ServiceGroup(configuration: .init(
            services: [
                .init(service: forwarder),
                .init(service: ingress),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        var exitCode: Int32 = 0
        do {
            try await serviceGroup.run()
        } catch {
            logger.error("Relay stopped with an error", metadata: ["error": "\(error)"])
            exitCode = 1
        }
        try? await client.shutdown()
        let stats = counters.snapshot
        var metadata: Logger.Metadata = [
            "received": .stringConvertible(stats.received), "accepted": .stringConvertible(stats.accepted), "delivered": .stringConvertible(stats.delivered),
            "too_large": .stringConvertible(stats.tooLarge), "malformed": .stringConvertible(stats.malformed), "dropped": .stringConvertible(stats.droppedTotal),
        ]
        for (reason, count) in stats.dropped { metadata["dropped_\(reason.rawValue)"] = .stringConvertible(count) }
        logger.info("Relay stopped", metadata: metadata)
        return exitCode
    }
}
