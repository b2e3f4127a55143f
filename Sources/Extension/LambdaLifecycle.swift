import Logging
import RelayCore
import Synchronization

/// When queued uploads are pushed out relative to invocations.
public enum FlushStrategy: String, Sendable, CaseIterable {
    /// Uploads go out whenever the environment runs (the Go extension's default). One on
    /// the wire when Lambda freezes the environment (network included) has an unknown fate
    /// at the thaw: resent, it may be stored twice.
    case background
    /// The default. On each INVOKE, send what is queued (what arrived while the environment
    /// was frozen) before taking the next event (the Go extension's
    /// PYROSCOPE_FLUSH_ON_INVOKE=true); uploads that arrive while the extension waits for the
    /// next event wait for it: none is on the wire when Lambda freezes the environment.
    case invoke
    /// After the runtime finished the invocation (Telemetry API `platform.runtimeDone`),
    /// drain the queue before `/event/next`, so nothing waits in the queue while the
    /// environment is frozen; as with `invoke`, nothing is sent while the extension waits.
    case end

    /// Whether nothing is sent while the extension waits in `/event/next` (Lambda may
    /// freeze the environment at any moment then), and no attempt is on the wire when it asks.
    public var holdsWhileParked: Bool { self != .background }
}

/// The request id of the invocation in progress, added to every log line.
public final class InvocationContext: Sendable {
    private let current = Mutex<String?>(nil)

    public init() {}

    public var requestID: String? { current.withLock { $0 } }
    public func set(_ requestID: String?) { current.withLock { $0 = requestID } }

    public var metadataProvider: Logger.MetadataProvider {
        Logger.MetadataProvider { [self] in
            guard let id = requestID else { return [:] }
            return [LogKey.requestId: "\(id)"]
        }
    }
}

/// The Lambda event loop: `/event/next` until SHUTDOWN, flushing as the strategy says.
/// Returning ends the service; the group then stops ingress and drains the forwarder
/// until the deadline this sets from SHUTDOWN's `deadlineMs`.
public struct LambdaLifecycle: Service, CustomStringConvertible {
    /// Kept back from Lambda's deadlines for logging, closing and exiting.
    public static let safetyMargin = Duration.milliseconds(200)

    let client: any ExtensionsAPIClient
    let strategy: FlushStrategy
    let pipeline: DeliveryPipeline
    let runtimeDone: RuntimeDoneTracker
    let drainDeadline: DrainDeadline
    let invocation: InvocationContext
    let logger: Logger
    /// Runs before each invocation flush, so uploads the extension makes itself (the
    /// self-profiler's window) are queued in time to go out with the flush.
    let beforeFlush: (@Sendable () async -> Void)?
    /// Lambda's deadlines are wall-clock times; waits for them go through this clock.
    let clock: any RelayClock
    let model: ExecutionModel
    /// Runs once the environment is a restored copy of a SnapStart snapshot, with the
    /// moment the restore began.
    let restored: (@Sendable (ContinuousClock.Instant) async -> Void)?
    /// Telemetry's `platform.restoreStart`, when subscribed.
    let milestones: PlatformMilestones?
    /// Bound on the drain before the first `/event/next` (provisioned concurrency, SnapStart).
    let initDrainTimeout: Duration
    /// How long to wait for the function's init to finish before that drain.
    let functionInitWait: Duration

    public init(
        client: any ExtensionsAPIClient, strategy: FlushStrategy, pipeline: DeliveryPipeline, runtimeDone: RuntimeDoneTracker,
        drainDeadline: DrainDeadline, invocation: InvocationContext, logger: Logger, beforeFlush: (@Sendable () async -> Void)? = nil,
        clock: any RelayClock = SystemClock(), model: ExecutionModel = .onDemand,
        restored: (@Sendable (ContinuousClock.Instant) async -> Void)? = nil, milestones: PlatformMilestones? = nil,
        initDrainTimeout: Duration = .seconds(2), functionInitWait: Duration = .seconds(5)
    ) {
        self.functionInitWait = functionInitWait
        self.model = model
        self.restored = restored
        self.milestones = milestones
        self.initDrainTimeout = initDrainTimeout
        self.client = client
        self.strategy = strategy
        self.pipeline = pipeline
        self.runtimeDone = runtimeDone
        self.drainDeadline = drainDeadline
        self.invocation = invocation
        self.logger = logger
        self.beforeFlush = beforeFlush
        self.clock = clock
    }

    public var description: String { "LambdaLifecycle(\(strategy.rawValue))" }

    /// A Lambda wall-clock deadline as an instant on the monotonic clock, less the margin.
    func instant(forDeadlineMs deadlineMs: Int64) -> ContinuousClock.Instant {
        clock.instant(forUnixMilliseconds: deadlineMs) - Self.safetyMargin
    }

    var counters: RelayCounters { pipeline.counters }

    public func run() async throws {
        if model.drainsBeforeFirstEvent {
            await waitForFunctionInit()
            await drainBeforeFirstEvent()
        }
        // Extensions get no restore event: with SnapStart, Lambda never invokes the
        // environment that took the snapshot, so whatever the first /event/next returns
        // comes to a restored copy. Until then the snapshot may be taken at any moment:
        // nothing is sent, so no connection, session id or upload in flight is cloned.
        var awaitingRestore = model == .snapStart
        if awaitingRestore { pipeline.hold() }
        // Until when the next quiesce may wait for attempts on the wire to end.
        var quiesceUntil = clock.now + initDrainTimeout
        while true {
            if strategy.holdsWhileParked { await quiesce(until: quiesceUntil) }
            let event: ExtensionEvent
            do {
                event = try await client.next()
            } catch {
                logger.error("Lambda Extensions API failed; stopping", metadata: [LogKey.error: "\(error)", LogKey.errorType: "\(error.code)"])
                await client.reportExitError(error)
                throw error
            }
            if awaitingRestore {
                awaitingRestore = false
                await restored?(await restoreInstant())
            }
            if strategy.holdsWhileParked { pipeline.resume() }
            switch event {
            case .invoke(let invoke):
                counters.metrics.lambdaEvents(type: "invoke").increment()
                invocation.set(invoke.requestId)
                logger.debug("Invoke", metadata: [LogKey.event: "INVOKE", LogKey.requestId: "\(invoke.requestId)"])
                await flushForInvocation(invoke)
                quiesceUntil = instant(forDeadlineMs: invoke.deadlineMs)
            case .shutdown(let shutdown):
                counters.metrics.lambdaEvents(type: "shutdown").increment()
                counters.metrics.lambdaShutdowns(reason: shutdown.shutdownReason.lowercased()).increment()
                invocation.set(nil)
                let deadline = instant(forDeadlineMs: shutdown.deadlineMs)
                drainDeadline.set(deadline)
                // A spin-down ends the execution environment and its /tmp; a reset after a
                // failed invocation (timeout, failure) keeps /tmp for the re-init.
                if shutdown.shutdownReason.lowercased() == "spindown" { pipeline.spoolEndsWithThisProcess() }
                let pending = pipeline.snapshot
                logger.info(
                    "Shutdown: draining queued uploads before the deadline",
                    metadata: [
                        LogKey.event: "SHUTDOWN", LogKey.shutdownReason: "\(shutdown.shutdownReason.lowercased())",
                        LogKey.budgetMs: .stringConvertible((deadline - clock.now).wholeMilliseconds),
                        LogKey.queueItems: .stringConvertible(pending.queuedItems), LogKey.spoolItems: .stringConvertible(pending.spoolItems),
                        LogKey.inFlight: .stringConvertible(pending.inFlight),
                    ])
                return
            }
        }
    }

    /// Before `/event/next`: no attempt may start, and those on the wire end first (bounded:
    /// past `deadline` the extension asks anyway, and says so).
    private func quiesce(until deadline: ContinuousClock.Instant) async {
        // The usual case: nothing on the wire, no task or timer for the wait.
        if pipeline.holdIfQuiet() { return }
        let onWire = pipeline.attemptsOnWire
        let quiet = await bounded(until: max(deadline, clock.now)) { [pipeline] in await pipeline.quiesce() }
        if !quiet {
            pipeline.hold()
            logger.warning(
                "Uploads still on the wire when asking for the next event: if Lambda freezes the environment now, they may be sent twice (counted in uploads_resent_unknown_total)",
                metadata: [LogKey.inFlight: .stringConvertible(pipeline.attemptsOnWire)])
        } else if onWire > 0 {
            logger.debug("Waited for the uploads on the wire before the next event", metadata: [LogKey.inFlight: .stringConvertible(onWire)])
        }
    }

    /// When the restore began: Telemetry's `platform.restoreStart` (it comes before the
    /// invocation; allow it a moment), else now. Uploads that arrived before it were held
    /// in the snapshot.
    private func restoreInstant() async -> ContinuousClock.Instant {
        if let milestones {
            for _ in 0..<10 {
                if let started = milestones.restoreStartUnixMilliseconds { return clock.instant(forUnixMilliseconds: started) }
                try? await clock.sleep(for: .milliseconds(10))
            }
        }
        return clock.now
    }

    /// Lambda's own core (RAPID) starts the function's init once extensions registered and
    /// ends the init phase when everyone called `/event/next`: waiting for Telemetry's
    /// `platform.initRuntimeDone` lets the drain cover the function's init-time uploads too.
    /// Bounded, for platforms that start the function only after extensions' `/next`.
    private func waitForFunctionInit() async {
        guard let milestones else { return }
        let giveUp = clock.now + functionInitWait
        while !milestones.functionInitDone, clock.now < giveUp {
            try? await clock.sleep(for: .milliseconds(10))
        }
        logger.debug(
            milestones.functionInitDone ? "Function init done before the first event" : "Function init not reported in time: draining what is there",
            metadata: [LogKey.executionModel: "\(model.rawValue)"])
    }

    /// Delivers what was accepted during init before the environment is frozen for long
    /// (provisioned concurrency) or snapshotted (SnapStart), within `initDrainTimeout`.
    private func drainBeforeFirstEvent() async {
        let pending = pipeline.snapshot.incomplete
        guard pending > 0 else { return }
        let started = ContinuousClock.now
        let drained = await bounded(until: clock.now + initDrainTimeout) { [pipeline] in await pipeline.flush() }
        let left = pipeline.snapshot.incomplete
        let metadata: Logger.Metadata = [
            LogKey.executionModel: "\(model.rawValue)", LogKey.pending: .stringConvertible(pending), LogKey.left: .stringConvertible(left),
            LogKey.drainMs: .stringConvertible((ContinuousClock.now - started).wholeMilliseconds),
        ]
        if drained {
            logger.info("Delivered what init accepted before the first event", metadata: metadata)
        } else {
            logger.warning("Init drain bound passed: the rest waits for the first event", metadata: metadata)
        }
    }

    private func flushForInvocation(_ invoke: InvokeEvent) async {
        guard strategy != .background else { return }
        let started = ContinuousClock.now
        let deadline = instant(forDeadlineMs: invoke.deadlineMs)
        var runtimeFinished = true
        if strategy == .end {
            runtimeFinished = await bounded(until: deadline) { await runtimeDone.waitUntilDone(invoke.requestId) }
            if !runtimeFinished {
                logger.warning(
                    "No platform.runtimeDone before the invocation deadline; flushing anyway",
                    metadata: [
                        LogKey.requestId: "\(invoke.requestId)"
                    ])
            }
        }
        let flushStarted = ContinuousClock.now
        let flushed = await bounded(until: deadline) { [beforeFlush, pipeline] in
            await beforeFlush?()
            await pipeline.flush()
        }
        counters.recordFlush(ContinuousClock.now - started)
        logger.debug(
            "Invocation flush",
            metadata: [
                LogKey.strategy: "\(strategy.rawValue)", LogKey.flushed: .stringConvertible(flushed),
                LogKey.flushMs: .stringConvertible((ContinuousClock.now - flushStarted).wholeMilliseconds),
                LogKey.totalMs: .stringConvertible((ContinuousClock.now - started).wholeMilliseconds),
            ])
        if !flushed {
            logger.warning(
                "Flush did not finish before the invocation deadline; the rest goes out after the next thaw",
                metadata: [
                    LogKey.requestId: "\(invoke.requestId)", LogKey.incomplete: .stringConvertible(pipeline.snapshot.incomplete),
                ])
        }
    }

    /// Runs `operation` until it returns (true) or the deadline passes (false).
    private func bounded(until deadline: ContinuousClock.Instant, _ operation: @escaping @Sendable () async -> Void) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await operation()
                return !Task.isCancelled
            }
            group.addTask { [clock] in
                try? await clock.sleep(until: deadline)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }
}
