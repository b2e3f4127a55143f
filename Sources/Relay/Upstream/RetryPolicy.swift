import GoCompatibility

/// The settings of when a failed upload is tried again and when it is given up, and the
/// arithmetic of its waits; `DeliveryAttempts` applies them to one upload.
///
/// Defaults follow Grafana Alloy's `pyroscope.write`: transport errors, timeouts, 408,
/// 429 and 5xx are retried with exponential backoff from 500 ms to 5 min, at most 10
/// tries; other 4xx are final. `Retry-After` is honoured (up to 5 min).
/// An upload older than an hour is dropped: Pyroscope rejects such profiles anyway.
public struct RetryPolicy: Sendable, Equatable {
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    public var maxAttempts: Int
    public var maxAge: Duration
    /// Fraction of each delay drawn at random (0.2: the delay lands in [0.8, 1.2] × backoff),
    /// so many environments thawing together do not retry in lockstep.
    public var jitter: Double
    /// Connection-level failures retried at once, on a fresh connection, before backoff
    /// starts: pooled connections die while Lambda freezes the environment, and the first
    /// use after the thaw finds them dead without the remote having seen the request.
    /// Each reconnect is still a request, counted against `maxAttempts`.
    public var immediateReconnects: Int

    public init(
        initialBackoff: Duration = .milliseconds(500), maxBackoff: Duration = .seconds(300), maxAttempts: Int = 10,
        maxAge: Duration = .seconds(3600), jitter: Double = 0.2, immediateReconnects: Int = 2
    ) {
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.maxAttempts = max(1, maxAttempts)
        self.maxAge = maxAge
        self.jitter = min(max(jitter, 0), 1)
        self.immediateReconnects = max(0, immediateReconnects)
    }

    /// The longest `Retry-After` honoured (unless `maxBackoff` is longer).
    public static let retryAfterCeiling = Duration.seconds(300)

    /// initialBackoff × 2^(attempt-1), capped, with jitter.
    public func backoff(attempt: Int, random: Double) -> Duration {
        let exponent = min(max(attempt - 1, 0), 40)
        var base = initialBackoff * (1 << exponent)
        if base > maxBackoff || base < .zero { base = maxBackoff }
        let factor = 1 - jitter + 2 * jitter * min(max(random, 0), 1)
        let jittered = base * factor
        return min(jittered, maxBackoff)
    }

    /// `Retry-After` as delta-seconds or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
    public static func parseRetryAfter(_ value: String, nowUnixSeconds: Int64) -> Duration? {
        let text = value.trimmingGoSpace()
        if let seconds = Int64(text), seconds >= 0 { return .seconds(seconds) }
        // IMF-fixdate: "Www, DD Mon YYYY HH:MM:SS GMT"
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[5] == "GMT", let day = Int64(parts[1]), let year = Int64(parts[3]) else { return nil }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard let monthIndex = months.firstIndex(of: String(parts[2])) else { return nil }
        let clock = parts[4].split(separator: ":").compactMap { Int64($0) }
        guard clock.count == 3 else { return nil }
        let unix = GoCalendar.daysSinceEpoch(year: year, month: monthIndex + 1, day: Int(day)) * 86400 + clock[0] * 3600 + clock[1] * 60 + clock[2]
        return .seconds(max(0, unix - nowUnixSeconds))
    }
}
