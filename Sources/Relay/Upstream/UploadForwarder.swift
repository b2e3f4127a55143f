import Logging
import NIOCore

/// The upstream side: `workers` concurrent senders take uploads from the delivery
/// pipeline and relay them, retrying as the policy says; while an invocation flush waits or
/// the pipeline drains, `drainConcurrency` of them. On graceful shutdown it closes
/// the pipeline, sends what is left until the drain deadline, and then abandons the rest
/// (memory: dropped and counted; spool: kept for the next start).
public struct UploadForwarder: Service, CustomStringConvertible {
    let pipeline: DeliveryPipeline
    let uploader: any Uploader
    /// nil when the remote address is unusable; the pipeline refuses uploads then, so
    /// nothing should reach the senders, but any that does (a replayed spool) is accounted for.
    let builder: UpstreamRequestBuilder?
    let workers: Int
    let drainConcurrency: Int
    let drainTimeout: Duration
    let drainDeadline: DrainDeadline
    let retryPolicy: RetryPolicy
    /// False where Lambda freezes the environment with uploads on the wire: see `DeliveryAttempts`.
    let resendsUnknownFate: Bool
    /// Backoff waits, ages and the drain deadline go through this clock.
    let clock: any RelayClock
    let dropLogLimiter = LogRateLimiter()
    /// Uploads the labels could not be added to (PYROSCOPE_LAMBDA_LABELS), by reason.
    let labelsLogLimiter = LogRateLimiter()
    /// Loops the senders run on (spread over them); empty: the cooperative pool.
    let senderLoops: [any EventLoop]
    let logger: Logger
    /// Credentials fetched after start (Secrets Manager, SSM); nil: they are settings.
    let credentialSource: (any UpstreamCredentialSource)?
    /// Explains failed attempts in the log: the first of each cause at once, then counts.
    let failureReporter: UpstreamFailureReporter
    /// The last attempts' durations: at shutdown, whether another attempt can end before the deadline.
    let recentAttempts = RecentAttemptDurations()

    public init(
        pipeline: DeliveryPipeline, uploader: any Uploader, builder: UpstreamRequestBuilder?, workers: Int, drainConcurrency: Int? = nil,
        drainTimeout: Duration,
        drainDeadline: DrainDeadline = DrainDeadline(), retryPolicy: RetryPolicy = RetryPolicy(), resendsUnknownFate: Bool = true,
        clock: any RelayClock = SystemClock(),
        senderLoops: (any EventLoopGroup)? = nil, credentialSource: (any UpstreamCredentialSource)? = nil,
        failureReporter: UpstreamFailureReporter? = nil, logger: Logger
    ) {
        self.pipeline = pipeline
        self.uploader = uploader
        self.builder = builder
        self.workers = max(1, workers)
        self.drainConcurrency = max(self.workers, drainConcurrency ?? self.workers)
        self.drainTimeout = drainTimeout
        self.drainDeadline = drainDeadline
        self.retryPolicy = retryPolicy
        self.resendsUnknownFate = resendsUnknownFate
        self.clock = clock
        self.senderLoops = senderLoops.map { Array($0.makeIterator()) } ?? []
        self.logger = logger
        self.credentialSource = credentialSource
        self.failureReporter = failureReporter ?? UpstreamFailureReporter(context: .init(remote: builder?.remote))
    }

    /// ServiceLifecycle logs services by description: keep configuration (and its
    /// credentials) out of it.
    public var description: String { "UploadForwarder(workers: \(workers), drain: \(drainConcurrency))" }

    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskGroup(of: Void.self) { senders in
                    // `workers` always send; the rest are started for a flush or the drain, and
                    // end with it: no task waits for a burst at start-up.
                    for index in 0..<workers { addSender(to: &senders, index: index, burst: false) }
                    if drainConcurrency > workers {
                        senders.addTask {
                            while await pipeline.burstBegins() {
                                await withTaskGroup(of: Void.self) { burst in
                                    for index in workers..<drainConcurrency { addSender(to: &burst, index: index, burst: true) }
                                }
                            }
                        }
                    }
                }
            }
            group.addTask {
                // Returns at graceful shutdown (throws only if cancelled first).
                guard (try? await gracefulShutdown()) != nil else { return }
                let deadline = drainDeadline.value ?? clock.now + drainTimeout
                // Dev mode sets it here; senders judge each attempt against it.
                drainDeadline.set(deadline)
                let pending = pipeline.snapshot
                logger.debug(
                    "Draining upload queue",
                    metadata: [
                        LogKey.queueItems: .stringConvertible(pending.queuedItems), LogKey.spoolItems: .stringConvertible(pending.spoolItems),
                        LogKey.inFlight: .stringConvertible(pending.inFlight),
                        LogKey.deadlineMs: .stringConvertible((deadline - clock.now).wholeMilliseconds),
                    ])
                pipeline.close()
                try? await clock.sleep(until: deadline)
            }
            // Whichever ends first: the senders drained everything, or the deadline passed.
            await group.next()
            group.cancelAll()
        }
        let (dropped, kept) = pipeline.abandon()
        defer { pipeline.releaseSpoolFolder() }
        if dropped > 0 {
            logger.error(
                "Dropped queued uploads at shutdown: drain deadline passed",
                metadata: [LogKey.reason: "\(DropReason.shutdownDeadline.rawValue)", LogKey.count: .stringConvertible(dropped)])
        }
        let spool = pipeline.snapshot
        if kept > 0 || (spool.spoolItems > 0 && pipeline.spoolOutlivesShutdown) {
            logger.warning(
                "Uploads left in the spool at shutdown: replayed when the relay starts again with the same spool",
                metadata: [LogKey.count: .stringConvertible(spool.spoolItems), LogKey.spoolBytes: .stringConvertible(spool.spoolBytes)])
        }
    }

    private func addSender(to group: inout TaskGroup<Void>, index: Int, burst: Bool) {
        if senderLoops.isEmpty {
            group.addTask { await sendUntilFinished(burst: burst) }
        } else {
            group.addTask(executorPreference: EventLoopTaskExecutor(senderLoops[index % senderLoops.count])) {
                await sendUntilFinished(burst: burst)
            }
        }
    }

    /// One sender: takes, sends, reports, until the pipeline is closed and empty (a burst
    /// sender: until the burst ends) or the drain deadline cancels it.
    private func sendUntilFinished(burst: Bool) async {
        while shutdownWindow().allowsAttempt(), let delivery = await pipeline.next(burst: burst) {
            let outcome = await deliver(
                delivery.upload, isFromSpool: delivery.isFromSpool, isCurrent: { await pipeline.mayAttempt(delivery) },
                attemptEnded: { pipeline.attemptEnded() })
            await pipeline.complete(delivery, outcome)
        }
    }
}
