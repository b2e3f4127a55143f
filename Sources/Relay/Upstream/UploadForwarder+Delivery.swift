import Logging
import NIOCore
import RelayMetrics

extension UploadForwarder {
    /// One upload's delivery: the I/O `DeliveryAttempts` asks for (credentials, attempts,
    /// waits on the clock), each attempt counted and its cause explained, and the line that
    /// says how it ended. Returns the pipeline's outcome; drops are logged (rate-limited).
    ///
    /// - Parameters:
    ///   - isFromSpool: cut short at shutdown, it is kept in the spool, not dropped.
    ///   - isCurrent: false once the upload must not be sent any more (accepted before a
    ///     SnapStart restore): asked before each attempt; it may wait (a held pipeline). True
    ///     puts an attempt on the wire, ended by `attemptEnded` whether it is made or not.
    func deliver(
        _ upload: Upload, isFromSpool: Bool = false, isCurrent: () async -> Bool = { true }, attemptEnded: () -> Void = {}
    ) async -> DeliveryPipeline.Outcome {
        // Built only for a log line: most uploads log nothing.
        func uploadLogger() -> Logger {
            var logger = logger
            logger[metadataKey: LogKey.path] = "\(upload.path)"
            return logger
        }
        var attempts = DeliveryAttempts(
            policy: retryPolicy, isFromSpool: isFromSpool, canRefetchCredentials: credentialSource != nil, resendsUnknownFate: resendsUnknownFate)
        guard var builder else {
            logDrop(.misconfigured, logger: uploadLogger(), "Dropped upload: the remote address is unusable")
            return .dropped(.misconfigured)
        }
        if let credentialSource {
            switch await credentials(for: upload, from: credentialSource) {
            case .ready(let credentials): builder.credentials = credentials
            case .drop(.shutdownDeadline, let message):
                logDrop(.shutdownDeadline, logger: uploadLogger(), "\(message)")
                return attempts.cutShort
            case .drop(let reason, let message):
                logDrop(reason, logger: uploadLogger(), "\(message)")
                return .dropped(reason)
            }
        }
        let prepared = builder.prepare(upload)
        var request = prepared.request
        if let reason = prepared.labelsNotApplied { reportLabelsNotApplied(reason, logger: uploadLogger()) }
        // What the last attempt said, for the lines about it.
        var report = AttemptReport()
        func send(_ attempt: Int) async -> (DeliveryAttempts.Event, AttemptReport) {
            let (event, report) = await self.attempt(request)
            if case .answered(.status(let code, _)) = event, (200..<300).contains(code), logger.logLevel <= .trace {
                uploadLogger().trace(
                    "Relayed upload",
                    metadata: [
                        LogKey.status: .stringConvertible(code), LogKey.bytes: .stringConvertible(upload.body.readableBytes),
                        LogKey.durationMs: .stringConvertible(report.duration.wholeMilliseconds), LogKey.attempt: .stringConvertible(attempt),
                    ])
            }
            return (event, report)
        }
        var event = DeliveryAttempts.Event.start
        // Between an admitted `isCurrent` and the end of that attempt (or its cancellation).
        var onWire = false
        func endAttempt() {
            if onWire { attemptEnded() }
            onWire = false
        }
        // The last attempt failed with no answer once the request was on its way.
        var fateUnknown = false
        func sendAgain(_ attempt: Int) async -> (DeliveryAttempts.Event, AttemptReport) {
            if fateUnknown { pipeline.counters.recordResentUnknown() }
            let sent = await send(attempt)
            endAttempt()
            fateUnknown = sent.1.fateUnknown
            return sent
        }
        while true {
            switch attempts.next(after: event, DeliveryAttempts.Circumstances(age: clock.now - upload.receivedAt, shutdown: shutdownWindow())) {
            case .confirmCurrent:
                let current = await isCurrent()
                onWire = current
                event = .confirmed(isCurrent: current)
            case .send(let attempt):
                (event, report) = await sendAgain(attempt)
            case .reconnect(let attempt):
                // A dead pooled connection: sent again at once on a fresh one, no backoff.
                pipeline.counters.recordRetry()
                uploadLogger().debug("Reconnecting to resend upload", metadata: report.metadata(attempt: attempt - 1))
                (event, report) = await sendAgain(attempt)
            case .refetchCredentials:
                let fresh = await credentialSource?.replacement(for: builder.credentials)
                if let fresh {
                    builder.credentials = fresh
                    // Only the headers carry credentials: the body (labels added) stays as built.
                    request.headers = builder.headers(for: upload.headers)
                    pipeline.counters.recordRetry()
                    uploadLogger().info("Resending upload with credentials fetched again after a \(report.statusCode)")
                }
                event = .credentialsRefetched(fresh != nil)
            case .wait(let delay):
                pipeline.counters.recordRetry()
                uploadLogger().debug(
                    "Retrying upload",
                    metadata: report.metadata(attempt: attempts.attempts).merging([LogKey.retryInMs: .stringConvertible(delay.wholeMilliseconds)]) { $1 })
                do {
                    try await clock.sleep(for: delay)
                    event = .waited
                } catch {
                    event = .cancelled
                }
            case .finish(let outcome):
                endAttempt()
                switch outcome {
                case .dropped(.snapshot):
                    logDrop(.snapshot, logger: uploadLogger(), "Dropped upload accepted before the SnapStart restore: every restored copy would send it")
                case .dropped(.shutdownDeadline):
                    logDrop(.shutdownDeadline, logger: uploadLogger(), "Dropped upload: the drain deadline came before it was delivered")
                case .dropped(let reason):
                    logDrop(reason, logger: uploadLogger(), "Failed to relay request", metadata: report.metadata(attempt: attempts.attempts))
                case .unconfirmed:
                    uploadLogger().info(
                        "Upload sent whole, its answer lost: not sent again, so that it is not stored twice",
                        metadata: report.metadata(attempt: attempts.attempts))
                case .delivered, .keptInSpool:
                    break
                }
                return outcome
            }
        }
    }

    /// What an attempt said, for the log lines about it.
    struct AttemptReport {
        var statusCode: UInt = 0
        var detail: Logger.Metadata = [:]
        var duration: Duration = .zero
        /// No answer once the request was on its way (a timeout, or the connection broke
        /// after the request was sent): the remote may have stored it.
        var fateUnknown = false

        func metadata(attempt: Int) -> Logger.Metadata {
            detail.merging([LogKey.attempt: .stringConvertible(attempt)]) { $1 }
        }
    }

    /// One request: sent, timed, counted, and its failure explained.
    private func attempt(_ request: UpstreamRequest) async -> (DeliveryAttempts.Event, AttemptReport) {
        let started = ContinuousClock.now
        let result: DeliveryAttempts.AttemptResult
        var report = AttemptReport()
        let cause: UpstreamAttemptCause
        do {
            let response = try await uploader.send(request)
            result = .status(
                code: response.status.code,
                retryAfter: response.retryAfter.flatMap { RetryPolicy.parseRetryAfter($0, nowUnixSeconds: clock.wallClockMilliseconds / 1000) })
            report.statusCode = response.status.code
            cause = UpstreamAttemptCause(status: report.statusCode)
            if !(200..<300).contains(report.statusCode) {
                report.detail = [LogKey.status: .stringConvertible(report.statusCode)]
                if !response.bodyExcerpt.isEmpty { report.detail[LogKey.body] = "\(response.bodyExcerpt)" }
            }
        } catch let error as UploadFailure {
            if Task.isCancelled { return (.cancelled, report) }
            switch error {
            case .timeout: result = .timeout
            case .connection(_, let requestSent):
                result = requestSent ? .answerLost : .connectionFailure
                report.fateUnknown = requestSent
            case .unreachable: result = .unreachable
            }
            if case .timeout = error { report.fateUnknown = true }
            cause = error.cause
            report.detail = [LogKey.error: "\(error)"]
        } catch {
            // Cancellation: the drain deadline passed while this upload was in flight.
            return (.cancelled, report)
        }
        report.duration = ContinuousClock.now - started
        recordAttempt(result, cause: cause, duration: report.duration)
        if cause != .none {
            failureReporter.record(
                cause, status: report.statusCode == 0 ? nil : report.statusCode,
                detail: report.detail[LogKey.body].map { "\($0)" } ?? report.detail[LogKey.error].map { "\($0)" } ?? "", logger: logger)
        }
        return (.answered(result), report)
    }

    /// Where shutdown stands, for the attempts' decisions.
    func shutdownWindow() -> ShutdownWindow {
        // The deadline alone says shutdown began: one lock per attempt on the hot path, not two.
        guard let deadline = drainDeadline.value else { return ShutdownWindow() }
        return ShutdownWindow(timeLeft: deadline - clock.now, slowestRecentAttempt: recentAttempts.slowestRecent)
    }

    private func recordAttempt(_ result: DeliveryAttempts.AttemptResult, cause: UpstreamAttemptCause, duration: Duration) {
        let counters = pipeline.counters
        counters.recordUpstream(duration)
        recentAttempts.record(duration)
        switch result {
        case .status(let code, _):
            let statusClass = "\(code / 100)xx"
            counters.metrics.upstreamAttempts(
                outcome: (200..<300).contains(code) ? "success" : "error_status", statusClass: statusClass, cause: cause.rawValue
            ).increment()
        case .timeout: counters.metrics.upstreamAttempts(outcome: "timeout", statusClass: "none", cause: cause.rawValue).increment()
        case .connectionFailure, .unreachable, .answerLost:
            counters.metrics.upstreamAttempts(outcome: "connection_error", statusClass: "none", cause: cause.rawValue).increment()
        }
    }

    /// An upload relayed without the Lambda labels: counted, and said at most a few times
    /// per reason and window. It is relayed as the client sent it.
    func reportLabelsNotApplied(_ reason: LabelsNotAppliedReason, logger: Logger) {
        pipeline.counters.recordLabelsNotApplied(reason)
        guard let suppressed = labelsLogLimiter.admit(reason.rawValue, now: clock.now) else { return }
        var metadata: Logger.Metadata = [LogKey.reason: "\(reason.rawValue)"]
        if suppressed > 0 { metadata[LogKey.suppressed] = .stringConvertible(suppressed) }
        logger.warning("Relaying upload without the PYROSCOPE_LAMBDA_LABELS labels: the relay cannot add them to it, so it goes as sent", metadata: metadata)
    }

    /// Logs a drop, at most a few lines per reason and window; counting is the pipeline's.
    func logDrop(_ reason: DropReason, logger: Logger, _ message: Logger.Message, metadata: Logger.Metadata = [:]) {
        guard let suppressed = dropLogLimiter.admit(reason.rawValue, now: clock.now) else { return }
        var metadata = metadata
        metadata[LogKey.reason] = "\(reason.rawValue)"
        if suppressed > 0 { metadata[LogKey.suppressed] = .stringConvertible(suppressed) }
        logger.error(message, metadata: metadata)
    }
}
