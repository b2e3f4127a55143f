import Synchronization

/// Lets through at most `burst` log lines per key in each `window`, and says how many
/// were held back, so a flood of drops cannot flood the logs (or the CloudWatch bill).
public final class LogRateLimiter: Sendable {
    private struct Window {
        var start: ContinuousClock.Instant
        var emitted = 0
        var suppressed = 0
    }

    private let burst: Int
    private let window: Duration
    private let windows = Mutex<[String: Window]>([:])

    public init(burst: Int = 5, window: Duration = .seconds(10)) {
        self.burst = burst
        self.window = window
    }

    /// nil: stay quiet. Otherwise log, mentioning the returned count held back since the last line.
    public func admit(_ key: String, now: ContinuousClock.Instant = .now) -> Int? {
        windows.withLock { windows in
            var current = windows[key] ?? Window(start: now)
            var carried = 0
            if now - current.start >= window {
                carried = current.suppressed
                current = Window(start: now)
            }
            defer { windows[key] = current }
            guard current.emitted < burst else {
                current.suppressed += 1
                return nil
            }
            current.emitted += 1
            return carried
        }
    }
}
