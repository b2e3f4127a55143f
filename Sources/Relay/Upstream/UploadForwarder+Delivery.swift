import Logging
import NIOCore
import RelayMetrics

extension UploadForwarder {
    /// How one upload's delivery ended; drops are already logged (rate-limited).
    enum DeliveryResult: Equatable {
        case delivered
        case drop(DropReason)
        /// The drain deadline cancelled it while it was in flight or waiting to retry
        /// (`logged`: the line saying so is written already).
        case cutShort(logged: Bool = false)
    }

    /// One upload's tries until it is delivered or dropped: credentials, attempts, their
    /// causes (counted and explained), a resend with refetched credentials after a
    /// 401/403, and the retry policy's waits on the clock.
    ///
    /// - Parameter isCurrent: false once the upload must not be sent any more (accepted
    ///   before a SnapStart restore): asked before each attempt; it may wait (a held pipeline).
    func deliver(_ upload: Upload, isCurrent: () async -> Bool = { true }) async -> DeliveryResult {
        // Built only for a log line: most uploads log nothing.
        func uploadLogger() -> Logger {
            var logger = logger
            logger[metadataKey: "path"] = "\(upload.path)"
            return logger
        }
        guard var builder else {
            logDrop(.misconfigured, logger: uploadLogger(), "Dropped upload: the remote address is unusable")
            return .drop(.misconfigured)
        }
        if let credentialSource {
            switch await credentials(for: upload, from: credentialSource) {
            case .ready(let credentials): builder.credentials = credentials
            case .drop(.shutdownDeadline, let message):
                logDrop(.shutdownDeadline, logger: uploadLogger(), "\(message)")
                return .cutShort(logged: true)
            case .drop(let reason, let message):
                logDrop(reason, logger: uploadLogger(), "\(message)")
                return .drop(reason)
            }
        }
        let prepared = builder.prepare(upload)
        var request = prepared.request
        if let reason = prepared.labelsNotApplied { reportLabelsNotApplied(reason, logger: uploadLogger()) }
        var credentialsRefetched = false
        var attempt = 0
        var reconnects = 0
        var random = SystemRandomNumberGenerator()
        while true {
            guard await isCurrent() else {
                logDrop(.snapshot, logger: uploadLogger(), "Dropped upload accepted before the SnapStart restore: every restored copy would send it")
                return .drop(.snapshot)
            }
            // At shutdown: not started when its answer would come after the deadline.
            guard hasTimeForAnAttempt() else { return .cutShort() }
            attempt += 1
            let started = ContinuousClock.now
            let result: RetryPolicy.AttemptResult
            var detail: Logger.Metadata = [:]
            var statusCode: UInt = 0
            let cause: UpstreamAttemptCause
            do {
                let response = try await uploader.send(request)
                result = .status(
                    code: response.status.code,
                    retryAfter: response.retryAfter.flatMap {
                        RetryPolicy.parseRetryAfter($0, nowUnixSeconds: clock.wallClockMilliseconds / 1000)
                    })
                statusCode = response.status.code
                cause = UpstreamAttemptCause(status: statusCode)
                if !(200..<300).contains(statusCode) {
                    detail = ["status": .stringConvertible(statusCode)]
                    if !response.bodyExcerpt.isEmpty { detail["body"] = "\(response.bodyExcerpt)" }
                }
            } catch let failure as UploadFailure {
                if Task.isCancelled { return .cutShort() }
                switch failure {
                case .timeout: result = .timeout
                case .connection: result = .connectionFailure
                case .unreachable: result = .unreachable
                }
                cause = failure.cause
                detail = ["error": "\(failure)"]
            } catch {
                // Cancellation: the drain deadline passed while this upload was in flight.
                return .cutShort()
            }
            let elapsed = ContinuousClock.now - started
            recordAttempt(result, cause: cause, duration: elapsed)
            if cause != .none {
                failureReporter.record(
                    cause, status: statusCode == 0 ? nil : statusCode,
                    detail: detail["body"].map { "\($0)" } ?? detail["error"].map { "\($0)" } ?? "", logger: logger)
            }
            if cause == .unauthorized, !credentialsRefetched, let credentialSource,
                let fresh = await credentialSource.replacement(for: builder.credentials)
            {
                // The secret was rotated: send again at once with the new value, once.
                credentialsRefetched = true
                builder.credentials = fresh
                // Only the headers carry credentials: the body (labels added) stays as built.
                request.headers = builder.headers(for: upload.headers)
                pipeline.counters.recordRetry()
                uploadLogger().info("Resending upload with credentials fetched again after a \(statusCode)")
                continue
            }
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
            case .reconnect:
                // A dead pooled connection: sent again at once on a fresh one, no backoff.
                pipeline.counters.recordRetry()
                reconnects += 1
                uploadLogger().debug("Reconnecting to resend upload", metadata: detail.merging(["attempt": .stringConvertible(attempt)]) { $1 })
            case .retry(let delay):
                guard hasTimeForAnAttempt(after: delay) else { return .cutShort() }
                pipeline.counters.recordRetry()
                uploadLogger().debug(
                    "Retrying upload",
                    metadata: detail.merging([
                        "attempt": .stringConvertible(attempt), "retry_in_ms": .stringConvertible(delay.wholeMilliseconds),
                    ]) { $1 })
                do { try await clock.sleep(for: delay) } catch { return .cutShort() }
            }
        }
    }

    private func recordAttempt(_ result: RetryPolicy.AttemptResult, cause: UpstreamAttemptCause, duration: Duration) {
        let counters = pipeline.counters
        counters.recordUpstream(duration)
        shutdownBudget.record(duration)
        switch result {
        case .status(let code, _):
            let statusClass = "\(code / 100)xx"
            counters.metrics.upstreamAttempts(
                outcome: (200..<300).contains(code) ? "success" : "error_status", statusClass: statusClass, cause: cause.rawValue
            ).increment()
        case .timeout: counters.metrics.upstreamAttempts(outcome: "timeout", statusClass: "none", cause: cause.rawValue).increment()
        case .connectionFailure, .unreachable:
            counters.metrics.upstreamAttempts(outcome: "connection_error", statusClass: "none", cause: cause.rawValue).increment()
        }
    }

    /// An upload relayed without the Lambda labels: counted, and said at most a few times
    /// per reason and window. It is relayed as the client sent it.
    func reportLabelsNotApplied(_ reason: LabelsNotAppliedReason, logger: Logger) {
        pipeline.counters.recordLabelsNotApplied(reason)
        guard let suppressed = labelsLogLimiter.admit(reason.rawValue, now: clock.now) else { return }
        var metadata: Logger.Metadata = ["reason": "\(reason.rawValue)"]
        if suppressed > 0 { metadata["suppressed"] = .stringConvertible(suppressed) }
        logger.warning("Relaying upload without the PYROSCOPE_LAMBDA_LABELS labels: the relay cannot add them to it, so it goes as sent", metadata: metadata)
    }

    /// Logs a drop, at most a few lines per reason and window; counting is the pipeline's.
    func logDrop(_ reason: DropReason, logger: Logger, _ message: Logger.Message, metadata: Logger.Metadata = [:]) {
        guard let suppressed = dropLogLimiter.admit(reason.rawValue, now: clock.now) else { return }
        var metadata = metadata
        metadata["reason"] = "\(reason.rawValue)"
        if suppressed > 0 { metadata["suppressed"] = .stringConvertible(suppressed) }
        logger.error(message, metadata: metadata)
    }
}
