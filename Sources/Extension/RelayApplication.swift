import AsyncHTTPClient
import Logging
import NIOCore
import NIOPosix
import RelayCore
import RelayProfiler
import ServiceLifecycle

/// Wires the relay's services from settings and runs them until shutdown.
public struct RelayApplication: Sendable {
    public let settings: ExtensionSettings
    public let logger: Logger
    /// The executable's file name: Lambda requires it as the extension's name.
    public let extensionName: String
    public let invocation: InvocationContext

    public init(settings: ExtensionSettings, logger: Logger, extensionName: String, invocation: InvocationContext = InvocationContext()) {
        self.settings = settings
        self.logger = logger
        self.extensionName = extensionName
        self.invocation = invocation
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

        var spool: UploadSpool?
        if let directory = relay.spoolDirectory {
            do {
                spool = try UploadSpool(directory: directory, maxBytes: relay.spoolMaxBytes, logger: forwardLogger)
                if let items = spool?.usage.items, items > 0 {
                    logger.info("Replaying uploads left in the spool by an earlier run", metadata: ["count": .stringConvertible(items)])
                }
            } catch {
                logger.warning(
                    "Spool unavailable: uploads beyond the memory queue will be refused with 503",
                    metadata: ["spool_dir": "\(directory)", "error": "\(error)"])
            }
        }
        let ingress = IngressServer(
            group: group, addresses: relay.listenAddresses, queue: queue, counters: counters,
            routes: [.healthz, .metrics(counters: counters, queue: queue, spool: spool)], spool: spool,
            maxBodyBytes: relay.maxBodyBytes, isRemoteUsable: relay.remote != nil, logger: ingressLogger)
        var bindError: RelayError?
        do { try await ingress.bind() } catch { bindError = error }

        // Lambda: register before anything can fail, so failures can be reported through
        // init/error; the relay is already bound before the first /event/next.
        let lambdaAPI: HTTPExtensionsAPIClient?
        if !settings.devMode, let runtimeAPI = settings.lambdaRuntimeAPI {
            let api = HTTPExtensionsAPIClient(runtimeAPI: runtimeAPI, eventLoopGroup: group)
            do {
                let registration = try await api.register(name: extensionName, events: ["INVOKE", "SHUTDOWN"])
                logger.info(
                    "Registered with the Lambda Extensions API",
                    metadata: [
                        "function_name": "\(registration.functionName)", "function_version": "\(registration.functionVersion)",
                    ])
            } catch {
                logger.critical("Cannot register with the Lambda Extensions API: \(error.message)", metadata: ["error_type": "\(error.code)"])
                await api.shutdown()
                return 1
            }
            lambdaAPI = api
        } else {
            lambdaAPI = nil
            if !settings.devMode {
                logger.warning(
                    "AWS_LAMBDA_RUNTIME_API is not set, so this is not Lambda: running the relay standalone as in dev mode (set PYROSCOPE_DEV_MODE=true to say so)"
                )
            }
        }
        if let bindError {
            logger.critical("Cannot start the relay: \(bindError.message)", metadata: ["error": "\(bindError)"])
            await lambdaAPI?.reportInitError(ExtensionError(.portInUse, bindError.message))
            await lambdaAPI?.shutdown()
            return 1
        }

        var clientConfiguration = HTTPClientUploader.clientConfiguration(timeout: relay.upstreamTimeout, workers: relay.workers)
        let upstreamProxy = settings.network.apply(to: &clientConfiguration, reaching: relay.remote)
        let client = HTTPClient(eventLoopGroup: group, configuration: clientConfiguration)
        // Credentials kept in AWS: fetched now, within a bounded time (init must not fail for it).
        let secrets = await SecretsWiring.start(settings: settings, group: group, logger: logger)
        let failureReporter = UpstreamFailureReporter(
            context: .init(
                remote: relay.remote, credentialSettings: settings.credentialSettings, timeout: relay.upstreamTimeout, proxy: upstreamProxy,
                trust: settings.network.trust))
        let drainDeadline = DrainDeadline()
        let forwarder = UploadForwarder(
            queue: queue, uploader: HTTPClientUploader(client: client, timeout: relay.upstreamTimeout, proxyHost: upstreamProxy?.host),
            builder: relay.remote.map { UpstreamRequestBuilder(configuration: relay, remote: $0) },
            counters: counters, workers: relay.workers, drainTimeout: relay.drainTimeout, drainDeadline: drainDeadline,
            retryPolicy: relay.retryPolicy, spool: spool, senderLoops: group, credentialSource: secrets.source,
            failureReporter: failureReporter, logger: forwardLogger)
        let stats = StatsReporter(
            counters: counters, queue: queue, spool: spool, interval: settings.statsInterval, emf: settings.emf, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: forwarder), .init(service: ingress), .init(service: stats),
        ]
        // First in, last to stop: held uploads can still get their credential while draining.
        if let secret = secrets.secret { services.insert(.init(service: secret), at: 0) }
        // Off: nothing is created, so no handler, timer or task exists.
        var selfProfiler: SelfProfiler?
        if settings.selfProfiling, relay.remote != nil {
            var profilerLogger = logger
            profilerLogger[metadataKey: "comp"] = "self-profiler"
            let admission = UploadAdmission(queue: queue, spool: spool, counters: counters)
            selfProfiler = SelfProfiler(configuration: settings.selfProfilerConfiguration, logger: profilerLogger) { await admission.admit($0) }
        }

        if let lambdaAPI {
            var lambdaLogger = logger
            lambdaLogger[metadataKey: "comp"] = "orchestrator"
            var strategy = settings.flushStrategy
            let runtimeDone = RuntimeDoneTracker()
            if strategy == .end {
                let listener = TelemetryListener(group: group, tracker: runtimeDone, logger: lambdaLogger)
                do {
                    let destination = try await listener.bind()
                    try await lambdaAPI.subscribeTelemetry(destinationURI: destination)
                    services.append(.init(service: listener))
                } catch {
                    // Flushing at each INVOKE still works without telemetry: degrade, don't fail.
                    lambdaLogger.warning("Telemetry API unavailable, flushing on invoke instead of at invocation end", metadata: ["error": "\(error)"])
                    strategy = .invoke
                }
            }
            var beforeFlush: (@Sendable () async -> Void)?
            if let selfProfiler { beforeFlush = { await selfProfiler.flush() } }
            let lifecycle = LambdaLifecycle(
                client: lambdaAPI, strategy: strategy, queue: queue, runtimeDone: runtimeDone,
                drainDeadline: drainDeadline, invocation: invocation, logger: lambdaLogger,
                counters: counters, beforeFlush: beforeFlush)
            // SHUTDOWN ends the lifecycle; the rest of the group then drains until the deadline.
            services.append(
                .init(
                    service: lifecycle, successTerminationBehavior: .gracefullyShutdownGroup,
                    failureTerminationBehavior: .gracefullyShutdownGroup))
            logger.info("Lambda lifecycle", metadata: ["flush_strategy": "\(strategy.rawValue)"])
        }

        // Last in, first to stop: its final window is queued before the forwarder drains.
        if let selfProfiler { services.append(.init(service: selfProfiler)) }
        if let remote = relay.remote {
            var metadata: Logger.Metadata = ["remote": "\(remote.redactedDescription)", "workers": .stringConvertible(relay.workers)]
            if let upstreamProxy { metadata["proxy"] = "\(upstreamProxy)" }
            logger.info("Relaying uploads", metadata: metadata)
        }
        // Shutdown runs in reverse order: ingress stops accepting first, then the
        // forwarder drains what was accepted.
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: services,
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
        await secrets.shutdown()
        await lambdaAPI?.shutdown()
        stats.logStats(phase: "shutdown")
        return exitCode
    }
}
