import Logging
import NIOCore
import ServiceLifecycle

/// The upstream side: `workers` concurrent senders take uploads from the queue and relay
/// them. On graceful shutdown it stops taking new uploads, sends what is queued within
/// the drain timeout, and accounts for whatever the deadline leaves behind.
public struct UploadForwarder: Service, CustomStringConvertible {
    let queue: UploadQueue
    let uploader: any Uploader
    /// nil when the remote address is unusable; ingress refuses uploads then, so
    /// nothing should reach the senders, but any that does is accounted for.
    let builder: UpstreamRequestBuilder?
    let counters: RelayCounters
    let workers: Int
    let drainTimeout: Duration
    let drainDeadline: DrainDeadline
    let retryPolicy: RetryPolicy
    /// Backoff waits go through this clock (tests may pass their own).
    let clock: any Clock<Duration>
    let dropLogLimiter = LogRateLimiter()
    let memory = MemoryRelease()
    let spool: UploadSpool?
    /// Loops the senders run on (spread over them); nil: the cooperative pool.
    let senderLoops: [any EventLoop]
    let logger: Logger
    /// Credentials fetched after start (Secrets Manager, SSM); nil: they are settings.
    let credentialSource: (any UpstreamCredentialSource)?
    let failureReporter: UpstreamFailureReporter

    public init(
        queue: UploadQueue, uploader: any Uploader, builder: UpstreamRequestBuilder?, counters: RelayCounters,
        workers: Int, drainTimeout: Duration, drainDeadline: DrainDeadline = DrainDeadline(),
        retryPolicy: RetryPolicy = RetryPolicy(), clock: any Clock<Duration> = ContinuousClock(), spool: UploadSpool? = nil,
        senderLoops: (any EventLoopGroup)? = nil, credentialSource: (any UpstreamCredentialSource)? = nil,
        failureReporter: UpstreamFailureReporter? = nil, logger: Logger
    ) {
        self.queue = queue
        self.uploader = uploader
        self.builder = builder
        self.counters = counters
        self.workers = max(1, workers)
        self.drainTimeout = drainTimeout
        self.drainDeadline = drainDeadline
        self.retryPolicy = retryPolicy
        self.clock = clock
        self.spool = spool
        self.senderLoops = senderLoops.map { Array($0.makeIterator()) } ?? []
        self.logger = logger
        self.credentialSource = credentialSource
        self.failureReporter = failureReporter ?? UpstreamFailureReporter(context: .init(remote: builder?.remote))
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
                            senders.addTask { await sendUntilClosed() }
                        } else {
                            let executor = EventLoopTaskExecutor(senderLoops[index % senderLoops.count])
                            senders.addTask(executorPreference: executor) { await sendUntilClosed() }
                        }
                    }
                }
            }
            group.addTask {
                // Returns at graceful shutdown (throws only if cancelled first).
                guard (try? await gracefulShutdown()) != nil else { return }
                let deadline = drainDeadline.value ?? .now + drainTimeout
                let pending = queue.snapshot
                logger.debug(
                    "Draining upload queue",
                    metadata: [
                        "queued": .stringConvertible(pending.queuedItems), "in_flight": .stringConvertible(pending.inFlight),
                        "deadline_ms": .stringConvertible((deadline - .now).wholeMilliseconds),
                    ])
                queue.close()
                try? await Task.sleep(until: deadline)
            }
            // Whichever ends first: the senders drained everything, or the deadline passed.
            await group.next()
            group.cancelAll()
        }
        let abandoned = queue.removeAll()
        if !abandoned.isEmpty {
            counters.recordDropped(.shutdownDeadline, count: abandoned.count)
            logger.error(
                "Dropped queued uploads at shutdown: drain deadline passed",
                metadata: [
                    "reason": "\(DropReason.shutdownDeadline.rawValue)", "count": .stringConvertible(abandoned.count),
                ])
        }
        if let spool, !spool.isEmpty {
            logger.warning(
                "Uploads left in the spool at shutdown: replayed when the relay starts again with the same spool",
                metadata: ["count": .stringConvertible(spool.usage.items), "spool_bytes": .stringConvertible(spool.usage.bytes)])
        }
    }

    /// One sender: memory first (oldest uploads), then the spool; after the queue closes,
    /// what is left in the spool, until cancelled by the drain deadline.
    private func sendUntilClosed() async {
        while !Task.isCancelled {
            if let ticket = queue.tryNext() {
                await send(ticket)
                continue
            }
            if await sendOneFromSpool() { continue }
            switch await queue.nextOrNudge() {
            case .ticket(let ticket): await send(ticket)
            case .nudged: continue
            case .closed:
                while !Task.isCancelled, await sendOneFromSpool() {}
                return
            }
        }
    }

    private func send(_ ticket: UploadQueue.Ticket) async {
        _ = await deliver(ticket.upload)
        let idle = queue.complete(ticket)
        memory.sent(bytes: ticket.bytes, queueIdle: idle)
    }

    /// Sends the oldest spooled upload, if any. Its file is deleted once it has an
    /// outcome, except when the drain deadline cut it short: then it stays for the next start.
    private func sendOneFromSpool() async -> Bool {
        guard let spool, let entry = await spool.takeOldest() else { return false }
        let outcome = await deliver(entry.upload)
        if outcome != .drop(.shutdownDeadline) { await spool.finish(entry.id) }
        return true
    }

    /// The upload's single outcome, already counted and logged.
    enum Outcome: Equatable {
        case delivered
        case drop(DropReason)
    }

    @discardableResult
    func deliver(_ upload: Upload) async -> Outcome {
        // Built only for a log line: most uploads log nothing.
        func uploadLogger() -> Logger {
            var logger = logger
            logger[metadataKey: "path"] = "\(upload.path)"
            return logger
        }
        guard var builder else {
            drop(.misconfigured, logger: uploadLogger(), "Dropped upload: the remote address is unusable")
            return .drop(.misconfigured)
        }
        if let credentialSource {
            switch await credentials(for: upload, from: credentialSource) {
            case .ready(let credentials): builder.credentials = credentials
            case .drop(let reason, let message):
                drop(reason, logger: uploadLogger(), "\(message)")
                return .drop(reason)
            }
        }
        var request = builder.build(upload)
        var credentialsRefetched = false
        var attempt = 0
        var reconnects = 0
        var random = SystemRandomNumberGenerator()
        while true {
            attempt += 1
            let started = ContinuousClock.now
            let result: RetryPolicy.AttemptResult
            var detail: Logger.Metadata = [:]
            var statusCode: UInt = 0
            let cause: UpstreamAttemptCause
            do {
                let response = try await uploader.send(request)
                let nowUnix = unixMilliseconds() / 1000
                result = .status(
                    code: response.status.code,
                    retryAfter: response.retryAfter.flatMap { RetryPolicy.parseRetryAfter($0, nowUnixSeconds: nowUnix) })
                statusCode = response.status.code
                cause = UpstreamAttemptCause(status: statusCode)
                if !(200..<300).contains(statusCode) {
                    detail = ["status": .stringConvertible(statusCode)]
                    if !response.bodyExcerpt.isEmpty { detail["body"] = "\(response.bodyExcerpt)" }
                }
            } catch let failure as UploadFailure {
                if Task.isCancelled { return dropInFlightAtDeadline(uploadLogger()) }
                switch failure {
                case .timeout: result = .timeout
                case .connection: result = .connectionFailure
                case .unreachable: result = .unreachable
                }
                cause = failure.cause
                detail = ["error": "\(failure)"]
            } catch {
                // Cancellation: the drain deadline passed while this upload was in flight.
                return dropInFlightAtDeadline(uploadLogger())
            }
            let elapsed = ContinuousClock.now - started
            recordAttempt(result, cause: cause, duration: elapsed)
            if cause != .none {
                failureReporter.record(
                    cause, status: statusCode == 0 ? nil : statusCode, detail: detail["body"].map { "\($0)" } ?? detail["error"].map { "\($0)" } ?? "",
                    logger: logger)
            }
            if cause == .unauthorized, !credentialsRefetched, let credentialSource,
                let fresh = await credentialSource.replacement(for: builder.credentials)
            {
                // The secret was rotated: send again at once with the new value, once.
                credentialsRefetched = true
                builder.credentials = fresh
                request = builder.build(upload)
                counters.recordRetry()
                uploadLogger().info("Resending upload with credentials fetched again after a \(statusCode)")
                continue
            }
            let decision = retryPolicy.decide(
                result, attempt: attempt, reconnectsUsed: reconnects, age: .now - upload.receivedAt,
                // The jitter only matters for a retry; drawing it costs a getrandom syscall.
                random: (200..<300).contains(statusCode) ? 0 : Double.random(in: 0..<1, using: &random))
            switch decision {
            case .delivered:
                counters.recordDelivered(bytes: upload.body.readableBytes)
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
                drop(reason, logger: uploadLogger(), "Failed to relay request", metadata: detail)
                return .drop(reason)
            case .retry(let delay):
                counters.recordRetry()
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
                do { try await clock.sleep(for: delay) } catch { return dropInFlightAtDeadline(uploadLogger()) }
            }
        }
    }

    private func recordAttempt(_ result: RetryPolicy.AttemptResult, cause: UpstreamAttemptCause, duration: Duration) {
        let metrics = counters.metrics
        counters.recordUpstream(duration)
        switch result {
        case .status(let code, _):
            let statusClass = "\(code / 100)xx"
            metrics.upstreamAttempts(
                outcome: (200..<300).contains(code) ? "success" : "error_status", statusClass: statusClass, cause: cause.rawValue
            ).increment()
        case .timeout: metrics.upstreamAttempts(outcome: "timeout", statusClass: "none", cause: cause.rawValue).increment()
        case .connectionFailure, .unreachable:
            metrics.upstreamAttempts(outcome: "connection_error", statusClass: "none", cause: cause.rawValue).increment()
        }
    }

    private func dropInFlightAtDeadline(_ logger: Logger) -> Outcome {
        drop(.shutdownDeadline, logger: logger, "Dropped upload in flight: drain deadline passed")
        return .drop(.shutdownDeadline)
    }

    private func drop(_ reason: DropReason, logger: Logger, _ message: Logger.Message, metadata: Logger.Metadata = [:]) {
        counters.recordDropped(reason)
        guard let suppressed = dropLogLimiter.admit(reason.rawValue) else { return }
        var metadata = metadata
        metadata["reason"] = "\(reason.rawValue)"
        if suppressed > 0 { metadata["suppressed"] = .stringConvertible(suppressed) }
        logger.error(message, metadata: metadata)
    }
}

extension Duration {
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The wall clock in Unix milliseconds: Lambda's deadlines, `Retry-After` dates and
/// spooled uploads' ages are wall-clock times (the monotonic clock does not survive a restart).
public func unixMilliseconds() -> Int64 { unixNanoseconds() / 1_000_000 }

/// The wall clock in Unix nanoseconds (pprof's `time_nanos`).
public func unixNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}
