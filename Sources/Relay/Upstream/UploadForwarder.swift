import Logging
import NIOCore
import ServiceLifecycle

/// The upstream side: `workers` concurrent senders take uploads from the delivery
/// pipeline and relay them, retrying as the policy says. On graceful shutdown it closes
/// the pipeline, sends what is left until the drain deadline, and then abandons the rest
/// (memory: dropped and counted; spool: kept for the next start).
public struct UploadForwarder: Service, CustomStringConvertible {
    let pipeline: DeliveryPipeline
    let uploader: any Uploader
    /// nil when the remote address is unusable; the pipeline refuses uploads then, so
    /// nothing should reach the senders, but any that does (a replayed spool) is accounted for.
    let builder: UpstreamRequestBuilder?
    let workers: Int
    let drainTimeout: Duration
    let drainDeadline: DrainDeadline
    let retryPolicy: RetryPolicy
    /// Backoff waits, ages and the drain deadline go through this clock.
    let clock: any RelayClock
    let dropLogLimiter = LogRateLimiter()
    /// Loops the senders run on (spread over them); empty: the cooperative pool.
    let senderLoops: [any EventLoop]
    let logger: Logger

    public init(
        pipeline: DeliveryPipeline, uploader: any Uploader, builder: UpstreamRequestBuilder?, workers: Int, drainTimeout: Duration,
        drainDeadline: DrainDeadline = DrainDeadline(), retryPolicy: RetryPolicy = RetryPolicy(), clock: any RelayClock = SystemClock(),
        senderLoops: (any EventLoopGroup)? = nil, logger: Logger
    ) {
        self.pipeline = pipeline
        self.uploader = uploader
        self.builder = builder
        self.workers = max(1, workers)
        self.drainTimeout = drainTimeout
        self.drainDeadline = drainDeadline
        self.retryPolicy = retryPolicy
        self.clock = clock
        self.senderLoops = senderLoops.map { Array($0.makeIterator()) } ?? []
        self.logger = logger
    }

    /// ServiceLifecycle logs services by description: keep configuration (and its
    /// credentials) out of it.
    public var description: String { "UploadForwarder(workers: \(workers))" }

    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskGroup(of: Void.self) { senders in
                    for index in 0..<workers {
                        if senderLoops.isEmpty {
                            senders.addTask { await sendUntilFinished() }
                        } else {
                            let executor = EventLoopTaskExecutor(senderLoops[index % senderLoops.count])
                            senders.addTask(executorPreference: executor) { await sendUntilFinished() }
                        }
                    }
                }
            }
            group.addTask {
                // Returns at graceful shutdown (throws only if cancelled first).
                guard (try? await gracefulShutdown()) != nil else { return }
                let deadline = drainDeadline.value ?? clock.now + drainTimeout
                let pending = pipeline.snapshot
                logger.debug(
                    "Draining upload queue",
                    metadata: [
                        "queued": .stringConvertible(pending.queuedItems), "spooled": .stringConvertible(pending.spoolItems),
                        "in_flight": .stringConvertible(pending.inFlight),
                        "deadline_ms": .stringConvertible((deadline - clock.now).wholeMilliseconds),
                    ])
                pipeline.close()
                try? await clock.sleep(until: deadline)
            }
            // Whichever ends first: the senders drained everything, or the deadline passed.
            await group.next()
            group.cancelAll()
        }
        let (dropped, kept) = pipeline.abandon()
        if dropped > 0 {
            logger.error(
                "Dropped queued uploads at shutdown: drain deadline passed",
                metadata: ["reason": "\(DropReason.shutdownDeadline.rawValue)", "count": .stringConvertible(dropped)])
        }
        let spool = pipeline.snapshot
        if kept > 0 || spool.spoolItems > 0 {
            logger.warning(
                "Uploads left in the spool at shutdown: replayed when the relay starts again with the same spool",
                metadata: ["count": .stringConvertible(spool.spoolItems), "spool_bytes": .stringConvertible(spool.spoolBytes)])
        }
    }

    /// One sender: takes, sends, reports, until the pipeline is closed and empty or the
    /// drain deadline cancels it.
    private func sendUntilFinished() async {
        while let delivery = await pipeline.next() {
            let outcome: DeliveryPipeline.Outcome
            switch await deliver(delivery.upload, isCurrent: { pipeline.isCurrent(delivery) }) {
            case .delivered: outcome = .delivered
            case .drop(let reason): outcome = .dropped(reason)
            case .cutShort:
                if delivery.isFromSpool {
                    outcome = .keptInSpool
                } else {
                    logDrop(.shutdownDeadline, logger: logger, "Dropped upload in flight: drain deadline passed")
                    outcome = .dropped(.shutdownDeadline)
                }
            }
            await pipeline.complete(delivery, outcome)
        }
    }

    /// How one upload's delivery ended; drops are already logged (rate-limited).
    enum DeliveryResult: Equatable {
        case delivered
        case drop(DropReason)
        /// The drain deadline cancelled it while it was in flight or waiting to retry.
        case cutShort
    }

    /// - Parameter isCurrent: false once the upload must not be sent any more (accepted
    ///   before a SnapStart restore): checked before each attempt.
    func deliver(_ upload: Upload, isCurrent: () -> Bool = { true }) async -> DeliveryResult {
        // Built only for a log line: most uploads log nothing.
        func uploadLogger() -> Logger {
            var logger = logger
            logger[metadataKey: "path"] = "\(upload.path)"
            return logger
        }
        guard let builder else {
            logDrop(.misconfigured, logger: uploadLogger(), "Dropped upload: the remote address is unusable")
            return .drop(.misconfigured)
        }
        let request = builder.build(upload)
        var attempt = 0
        var reconnects = 0
        var random = SystemRandomNumberGenerator()
        while true {
            guard isCurrent() else {
                logDrop(.snapshot, logger: uploadLogger(), "Dropped upload accepted before the SnapStart restore: every restored copy would send it")
                return .drop(.snapshot)
            }
            attempt += 1
            let started = ContinuousClock.now
            let result: RetryPolicy.AttemptResult
            var detail: Logger.Metadata = [:]
            var statusCode: UInt = 0
            do {
                let response = try await uploader.send(request)
                result = .status(
                    code: response.status.code,
                    retryAfter: response.retryAfter.flatMap {
                        RetryPolicy.parseRetryAfter($0, nowUnixSeconds: clock.wallClockMilliseconds / 1000)
                    })
                statusCode = response.status.code
                if !(200..<300).contains(statusCode) {
                    detail = ["status": .stringConvertible(statusCode)]
                    if !response.bodyExcerpt.isEmpty { detail["body"] = "\(response.bodyExcerpt)" }
                }
            } catch let failure as UploadFailure {
                if Task.isCancelled { return .cutShort }
                switch failure {
                case .timeout: result = .timeout
                case .connection: result = .connectionFailure
                }
                detail = ["error": "\(failure)"]
            } catch {
                // Cancellation: the drain deadline passed while this upload was in flight.
                return .cutShort
            }
            let elapsed = ContinuousClock.now - started
            recordAttempt(result, duration: elapsed)
            let decision = retryPolicy.decide(
                result, attempt: attempt, reconnectsUsed: reconnects, age: clock.now - upload.receivedAt,
                // The jitter only matters for a retry; drawing it costs a getrandom syscall.
                random: (200..<300).contains(statusCode) ? 0 : Double.random(in: 0..<1, using: &random))
            switch decision {
            case .delivered:
                if logger.logLevel <= .trace {
                    uploadLogger().trace(
                        "Relayed upload",
                        metadata: [
                            "status": .stringConvertible(statusCode), "bytes": .stringConvertible(upload.body.readableBytes),
                            "duration_ms": .stringConvertible(elapsed.wholeMilliseconds), "attempt": .stringConvertible(attempt),
                        ])
                }
                return .delivered
            case .drop(let reason):
                detail["attempt"] = .stringConvertible(attempt)
                logDrop(reason, logger: uploadLogger(), "Failed to relay request", metadata: detail)
                return .drop(reason)
            case .retry(let delay):
                pipeline.counters.recordRetry()
                if delay == .zero {
                    // A dead pooled connection: not the remote's fault, not a try.
                    reconnects += 1
                    attempt -= 1
                }
                uploadLogger().debug(
                    "Retrying upload",
                    metadata: detail.merging([
                        "attempt": .stringConvertible(attempt), "retry_in_ms": .stringConvertible(delay.wholeMilliseconds),
                    ]) { $1 })
                do { try await clock.sleep(for: delay) } catch { return .cutShort }
            }
        }
    }

    private func recordAttempt(_ result: RetryPolicy.AttemptResult, duration: Duration) {
        let counters = pipeline.counters
        counters.recordUpstream(duration)
        switch result {
        case .status(let code, _):
            let statusClass = "\(code / 100)xx"
            counters.metrics.upstreamAttempts(outcome: (200..<300).contains(code) ? "success" : "error_status", statusClass: statusClass)
                .increment()
        case .timeout: counters.metrics.upstreamAttempts(outcome: "timeout", statusClass: "none").increment()
        case .connectionFailure: counters.metrics.upstreamAttempts(outcome: "connection_error", statusClass: "none").increment()
        }
    }

    /// Logs a drop, at most a few lines per reason and window; counting is the pipeline's.
    private func logDrop(_ reason: DropReason, logger: Logger, _ message: Logger.Message, metadata: Logger.Metadata = [:]) {
        guard let suppressed = dropLogLimiter.admit(reason.rawValue, now: clock.now) else { return }
        var metadata = metadata
        metadata["reason"] = "\(reason.rawValue)"
        if suppressed > 0 { metadata["suppressed"] = .stringConvertible(suppressed) }
        logger.error(message, metadata: metadata)
    }
}
