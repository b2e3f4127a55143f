/// The keys of the relay's log metadata, in one place: one name per meaning, so a
/// CloudWatch Logs Insights query written against one line works on every line that
/// says the same thing. Counts that are also metrics use the metric's name.
public enum LogKey {
    public static let accepted = "accepted"
    public static let addresses = "addresses"
    public static let application = "application"
    /// Which request this was for the upload, 1 for the first.
    public static let attempt = "attempt"
    public static let body = "body"
    public static let budgetMs = "budget_ms"
    public static let bytes = "bytes"
    /// Why an upstream attempt failed: an `UpstreamAttemptCause` raw value, as in the metrics.
    public static let cause = "cause"
    /// The component a line comes from (`controller`, `orchestrator`, `self-profiler`, `secrets`), as the Go extension named them.
    public static let comp = "comp"
    /// How many of what the line says.
    public static let count = "count"
    public static let deadlineMs = "deadline_ms"
    public static let delivered = "delivered"
    public static let deliveredBytes = "delivered_bytes"
    public static let drainMs = "drain_ms"
    public static let dropped = "dropped"
    public static let droppedSamples = "dropped_samples"
    public static let durationMs = "duration_ms"
    /// An error, described (never a credential).
    public static let error = "error"
    public static let errorCode = "error_code"
    public static let errorType = "error_type"
    public static let event = "event"
    public static let events = "events"
    public static let executionModel = "execution_model"
    public static let failedAttempts = "failed_attempts"
    public static let file = "file"
    public static let flushMs = "flush_ms"
    public static let flushStrategy = "flush_strategy"
    public static let flushed = "flushed"
    public static let functionName = "function_name"
    public static let functionVersion = "function_version"
    public static let host = "host"
    public static let hz = "hz"
    /// Uploads a sender is delivering now.
    public static let inFlight = "in_flight"
    public static let incomplete = "incomplete"
    public static let keptInSpool = "kept_in_spool"
    public static let labels = "labels"
    public static let left = "left"
    public static let limit = "limit"
    public static let limitBytes = "limit_bytes"
    public static let malformed = "malformed"
    public static let maxConnections = "max_connections"
    public static let method = "method"
    public static let path = "path"
    public static let pending = "pending"
    public static let proxy = "proxy"
    /// Uploads waiting in memory (the `queue_items` gauge).
    public static let queueItems = "queue_items"
    /// Why an upload was dropped or refused: a `DropReason` raw value, as in the metrics.
    public static let reason = "reason"
    public static let received = "received"
    public static let remote = "remote"
    /// The invocation's request id.
    public static let requestId = "request_id"
    public static let retries = "retries"
    public static let retryInMs = "retry_in_ms"
    public static let samples = "samples"
    public static let secret = "secret"
    public static let setting = "setting"
    public static let shutdownReason = "shutdown_reason"
    public static let spoolBytes = "spool_bytes"
    public static let spoolDir = "spool_dir"
    /// Uploads waiting in the disk spool (the `spool_items` gauge).
    public static let spoolItems = "spool_items"
    public static let status = "status"
    public static let strategy = "strategy"
    /// Lines of the same kind left out since the last one (rate-limited).
    public static let suppressed = "suppressed"
    /// The service, on every line (`pyroscope-lambda-ext-main`), as the Go extension wrote it.
    public static let svc = "svc"
    public static let tooLarge = "too_large"
    public static let totalMs = "total_ms"
    public static let workers = "workers"
}
