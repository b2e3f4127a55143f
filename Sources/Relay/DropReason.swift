/// Why an accepted or offered upload did not reach the remote.
public enum DropReason: String, Sendable, CaseIterable {
    /// Queue full when it arrived (the client was told 503).
    case queueFull = "queue_full"
    /// The remote answered 4xx other than 408/429: retrying cannot help.
    case rejected4xx = "rejected_4xx"
    /// Still failing (5xx, 408, 429, timeout, connection error) after the last try.
    case maxRetries = "max_retries"
    /// Older than Pyroscope accepts (1 h) before it could be delivered.
    case tooOld = "too_old"
    /// Shutdown came and the drain deadline passed first.
    case shutdownDeadline = "shutdown_deadline"
    /// The remote address is unusable (the client was told 503).
    case misconfigured
    /// A spooled record that could not be read back (damaged, truncated, deleted).
    case corrupt
    /// Still queued when a SnapStart snapshot was taken: every environment restored from
    /// it would send it again, so each drops it.
    case snapshot
}
