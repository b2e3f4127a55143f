#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Time as the relay's behaviour sees it: the monotonic clock for ages, backoff waits and
/// deadlines, and the wall clock for what is written as wall-clock time (Lambda's
/// `deadlineMs`, `Retry-After` dates, the age of uploads spooled by an earlier run).
///
/// Injected wherever behaviour depends on time, so tests drive backoff, `Retry-After`,
/// maximum age and deadlines with a test clock instead of sleeping. Instants are
/// `ContinuousClock.Instant`s whatever the clock, so values pass between components
/// without generics; a test clock simply hands out instants of its own choosing.
/// (Latency histograms measure real time and use `ContinuousClock` directly.)
public protocol RelayClock: Sendable {
    var now: ContinuousClock.Instant { get }
    /// The wall clock in Unix milliseconds.
    var wallClockMilliseconds: Int64 { get }
    /// Returns at `deadline`, or throws `CancellationError` when the task is cancelled first.
    func sleep(until deadline: ContinuousClock.Instant) async throws
}

extension RelayClock {
    public func sleep(for duration: Duration) async throws {
        try await sleep(until: now + duration)
    }

    /// A Lambda wall-clock deadline (Unix milliseconds) on this clock's monotonic time line.
    public func instant(forUnixMilliseconds unixMilliseconds: Int64) -> ContinuousClock.Instant {
        now + .milliseconds(unixMilliseconds - wallClockMilliseconds)
    }
}

/// The real clocks.
public struct SystemClock: RelayClock {
    public init() {}

    public var now: ContinuousClock.Instant { .now }
    public var wallClockMilliseconds: Int64 { unixMilliseconds() }

    public func sleep(until deadline: ContinuousClock.Instant) async throws {
        try await Task.sleep(until: deadline, clock: .continuous)
    }
}

/// The wall clock in Unix milliseconds.
public func unixMilliseconds() -> Int64 { unixNanoseconds() / 1_000_000 }

/// The wall clock in Unix nanoseconds (pprof's `time_nanos`).
public func unixNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

extension Duration {
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
