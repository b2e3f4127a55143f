import Logging
import NIOCore
import NIOPosix
import RelayCore
import RelayProfiler

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

    /// Runs until SIGTERM/SIGINT (dev mode) or Lambda's SHUTDOWN, then drains within the
    /// deadline. Returns the process exit code.
    ///
    /// Lambda starts the function's runtime once every extension has registered; from then on
    /// the runtime and the extension share the function's CPU. Below two vCPUs (under 3,538
    /// MB) they share one CPU's quota or less, and the relay's construction cost the function's
    /// init about 3.5 ms of CPU after registration against about 1 ms before it (128 MB, make
    /// bench-cost's CPU-share mode): there the relay is built and serving before `/register`.
    /// With two vCPUs or more (or outside Lambda) registering comes first and the relay is
    /// built beside the starting runtime. Secrets, Telemetry and the services come after
    /// both. A failure found before registering (a port in use) is reported through
    /// `init/error` once registered.
    public func run() async -> Int32 {
        var listeners: ListeningSockets?
        var bindError: RelayError?
        do {
            listeners = try ListeningSockets.open(settings.relay.listenAddresses, logger: logger)
        } catch {
            bindError = error
        }
        var lambdaAPI: HTTPExtensionsAPIClient?
        if !settings.devMode, let runtimeAPI = settings.lambdaRuntimeAPI {
            lambdaAPI = HTTPExtensionsAPIClient(runtimeAPI: runtimeAPI)
        } else if !settings.devMode {
            logger.warning(
                "AWS_LAMBDA_RUNTIME_API is not set, so this is not Lambda: running the relay standalone as in dev mode (set PYROSCOPE_DEV_MODE=true to say so)"
            )
        }
        var registration: Registration?
        if let api = lambdaAPI, (settings.threads ?? 2) >= 2 {
            guard let made = await register(api) else {
                await api.shutdown()
                return 1
            }
            registration = made
        }
        let group = MultiThreadedEventLoopGroup.singleton
        let secrets = SecretsWiring.make(settings: settings, group: group, logger: logger)
        let exitCode =
            (try? await Relay.with(settings.relay, credentialSource: secrets.source, logger: logger) { relay -> Int32 in
                if let listeners, bindError == nil {
                    do throws(RelayError) { try await relay.ingress.bind(adopting: listeners) } catch { bindError = error }
                }
                if let api = lambdaAPI, registration == nil {
                    guard let made = await register(api) else { return 1 }
                    registration = made
                }
                if let error = bindError ?? (listeners == nil ? RelayError(.bindFailed, "no listening socket") : nil) {
                    logger.critical("Cannot start the relay: \(error.message)", metadata: [LogKey.error: "\(error)"])
                    await lambdaAPI?.reportInitError(ExtensionError(.portInUse, error.message))
                    return 1
                }
                return await run(
                    relay, lambdaAPI: lambdaAPI, events: registration?.events, strategy: registration?.strategy ?? settings.flushStrategy,
                    secrets: secrets)
            }) ?? 1
        listeners?.closeUnadopted()
        await secrets.shutdown()
        await lambdaAPI?.shutdown()
        return exitCode
    }

    /// What registering settled: the flush strategy Lambda allows, and the lifecycle's source
    /// of events (the first `/event/next` goes out at once, where nothing must precede it).
    private struct Registration {
        let strategy: FlushStrategy
        let events: any ExtensionsAPIClient
    }

    /// Registers with the Extensions API, or returns nil (logged) when Lambda refused: without
    /// a registration it cannot run the extension at all.
    private func register(_ api: HTTPExtensionsAPIClient) async -> Registration? {
        do {
            let registered = try await LambdaRegistration.register(
                client: api, name: extensionName, model: settings.executionModel, strategy: settings.flushStrategy, logger: logger)
            logger.info(
                "Registered with the Lambda Extensions API",
                metadata: [
                    LogKey.functionName: "\(registered.registration.functionName)",
                    LogKey.functionVersion: "\(registered.registration.functionVersion)",
                    LogKey.events: "\(registered.events.joined(separator: ","))", LogKey.executionModel: "\(settings.executionModel.rawValue)",
                ])
            let prefetch = FirstEventPrefetch.applies(strategy: registered.strategy, model: settings.executionModel)
            return Registration(strategy: registered.strategy, events: prefetch ? FirstEventPrefetch(api) : api)
        } catch {
            logger.critical("Cannot register with the Lambda Extensions API: \(error.message)", metadata: [LogKey.errorType: "\(error.code)"])
            return nil
        }
    }

    private func run(
        _ relay: Relay, lambdaAPI: HTTPExtensionsAPIClient?, events: (any ExtensionsAPIClient)?, strategy: FlushStrategy,
        secrets: SecretsWiring
    ) async -> Int32 {
        let group = MultiThreadedEventLoopGroup.singleton
        var strategy = strategy

        // Credentials kept in AWS: fetched once listening and registered, within a bounded time
        // (init must not fail for it).
        await secrets.fetchAtStart()
        let pipeline = relay.pipeline
        let stats = StatsReporter(pipeline: pipeline, interval: settings.statsInterval, emf: settings.emf, logger: logger)
        var services = relay.services + [.init(service: stats, serviceName: "stats")]
        // First in, last to stop: held uploads can still get their credential while draining.
        if let secret = secrets.secret { services.insert(.init(service: secret, serviceName: "secret"), at: 0) }
        // Off: nothing is created, so no handler, timer or task exists.
        var selfProfiler: SelfProfiler?
        if settings.selfProfiling, settings.relay.remote != nil {
            var profilerLogger = logger
            profilerLogger[metadataKey: LogKey.comp] = "self-profiler"
            selfProfiler = SelfProfiler(configuration: settings.selfProfilerConfiguration, logger: profilerLogger) {
                await pipeline.admit($0).isAccepted
            }
        }

        if let lambdaAPI, let events {
            var lambdaLogger = logger
            lambdaLogger[metadataKey: LogKey.comp] = "orchestrator"
            let runtimeDone = RuntimeDoneTracker()
            // Only a subscription Lambda accepted brings milestones: without one the lifecycle
            // must not wait for platform.initRuntimeDone (it would wait its whole bound).
            var milestones: PlatformMilestones?
            // `end` waits for platform.runtimeDone; provisioned concurrency and SnapStart learn
            // when the function's init ended and (SnapStart) when the restore began.
            if strategy == .end || settings.executionModel.drainsBeforeFirstEvent {
                let subscribed = PlatformMilestones()
                let listener = TelemetryListener(group: group, tracker: runtimeDone, milestones: subscribed, logger: lambdaLogger)
                do {
                    let destination = try await listener.bind()
                    try await lambdaAPI.subscribeTelemetry(destinationURI: destination, schemaVersion: settings.executionModel.telemetrySchemaVersion)
                    services.append(.init(service: listener, serviceName: "telemetry"))
                    milestones = subscribed
                } catch {
                    await listener.close()
                    // Flushing at each INVOKE still works without telemetry: degrade, don't fail.
                    if strategy == .end {
                        lambdaLogger.warning(
                            "Telemetry API unavailable, flushing on invoke instead of at invocation end", metadata: [LogKey.error: "\(error)"])
                        strategy = .invoke
                    } else {
                        lambdaLogger.warning(
                            "Telemetry API unavailable: init drains what is there at once, a SnapStart restore is dated by the first event",
                            metadata: [LogKey.error: "\(error)"])
                    }
                }
            }
            var beforeFlush: (@Sendable () async -> Void)?
            if let selfProfiler { beforeFlush = { await selfProfiler.flush() } }
            let lifecycle = LambdaLifecycle(
                client: events, strategy: strategy, pipeline: pipeline, runtimeDone: runtimeDone,
                drainDeadline: relay.drainDeadline, invocation: invocation, logger: lambdaLogger,
                beforeFlush: beforeFlush, clock: relay.clock, model: settings.executionModel,
                restored: { [lambdaLogger] began in await Self.restoredFromSnapshot(relay, began: began, logger: lambdaLogger) },
                milestones: milestones)
            // SHUTDOWN ends the lifecycle; the rest of the group then drains until the deadline.
            services.append(
                .init(
                    service: lifecycle, successTerminationBehavior: .gracefullyShutdownGroup,
                    failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "lambda-lifecycle"))
            logger.info(
                "Lambda lifecycle", metadata: [LogKey.flushStrategy: "\(strategy.rawValue)", LogKey.executionModel: "\(settings.executionModel.rawValue)"])
        }

        // Last in, first to stop: its final window is queued before the forwarder drains.
        if let selfProfiler { services.append(.init(service: selfProfiler, serviceName: "self-profiler")) }
        if let remote = settings.relay.remote {
            var metadata: Logger.Metadata = [LogKey.remote: "\(remote.redactedDescription)", LogKey.workers: .stringConvertible(settings.relay.workers)]
            if let proxy = relay.upstreamProxy { metadata[LogKey.proxy] = "\(proxy)" }
            if !settings.relay.labels.isEmpty { metadata[LogKey.labels] = "\(settings.relay.labels.labels.map(\.description).joined(separator: ","))" }
            logger.info("Relaying uploads", metadata: metadata)
        }
        // SIGTERM and SIGINT (one that came earlier included) shut the group down gracefully:
        // ShutdownSignals watches them, not the group.
        let serviceGroup = ServiceGroup(configuration: .init(services: services, logger: logger))
        ShutdownSignals.onSignal { _ in Task { await serviceGroup.triggerGracefulShutdown() } }
        var exitCode: Int32 = 0
        do {
            try await serviceGroup.run()
        } catch {
            logger.error("Relay stopped with an error", metadata: [LogKey.error: "\(error)"])
            exitCode = 1
        }
        stats.logStats(phase: "shutdown")
        return exitCode
    }

    /// What a restored copy of a SnapStart snapshot must not share with the others: uploads
    /// queued at the snapshot (each copy would send them), the session id, and the pooled
    /// connections (made before the snapshot, not valid after it).
    static func restoredFromSnapshot(_ relay: Relay, began: ContinuousClock.Instant, logger: Logger) async {
        let dropped = await relay.pipeline.discardAccepted(arrivedBefore: began, reason: .snapshot)
        relay.sessionIdentity.renew()
        await relay.uploader.discardConnections()
        relay.pipeline.resume()
        let metadata: Logger.Metadata = [LogKey.dropped: .stringConvertible(dropped), LogKey.reason: "\(DropReason.snapshot.rawValue)"]
        if dropped > 0 {
            logger.warning("Restored from a SnapStart snapshot: dropped the uploads it held, as every restored copy would send them", metadata: metadata)
        } else {
            logger.info("Restored from a SnapStart snapshot: new session id, fresh upstream connections", metadata: metadata)
        }
    }
}
