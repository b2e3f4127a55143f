import RelayCore

/// A clock tests move by hand: `sleep` returns only when `advance` passes its deadline,
/// so backoff, `Retry-After`, ages and deadlines are checked in milliseconds of real time.
/// It starts at a real instant and a fixed wall-clock time, and both move together.
///
/// Each sleep is announced once it waits (`sleepCalls`, `waitForSleepers`), so a test
/// awaits the code under test reaching its wait, then moves the clock:
/// `try await clock.waitForSleepers(); clock.advance(by: .seconds(2))`.
public final class TestClock: RelayClock {
    /// A sleep that began: how long it asked for, and until when.
    public struct SleepCall: Sendable, Equatable {
        public var duration: Duration
        public var deadline: ContinuousClock.Instant
    }

    private struct Sleeper {
        var id: UInt64
        var deadline: ContinuousClock.Instant
    }

    private struct State {
        var now: ContinuousClock.Instant
        var wallClockMilliseconds: Int64
        var sleepers: [Sleeper] = []
        var nextID: UInt64 = 0
        /// Every deadline ever slept until, in order: what tests assert backoff with.
        var sleeps: [Duration] = []
    }

    private let state: Watched<State>
    private let announcements: AsyncStream<SleepCall>.Continuation

    /// Every sleep, in call order, once it waits on this clock (or, its deadline come
    /// already, as it returns): `await` its next element, then `advance`. One consumer.
    public let sleepCalls: AsyncStream<SleepCall>

    public init(wallClockMilliseconds: Int64 = 1_800_000_000_000) {
        state = Watched(State(now: .now, wallClockMilliseconds: wallClockMilliseconds))
        (sleepCalls, announcements) = AsyncStream.makeStream(of: SleepCall.self)
    }

    public var now: ContinuousClock.Instant { state.value.now }
    public var wallClockMilliseconds: Int64 { state.value.wallClockMilliseconds }

    /// How long each sleep asked for, from the moment it began, in call order.
    public var sleeps: [Duration] { state.value.sleeps }

    /// Tasks sleeping now.
    public var sleeperCount: Int { state.value.sleepers.count }

    /// The earliest deadline a task sleeps until, relative to now.
    public var nextDeadline: Duration? {
        let state = state.value
        return state.sleepers.map(\.deadline).min().map { $0 - state.now }
    }

    /// Waits on the watched state until `advance` brings `now` to the deadline: the sleeper
    /// is listed (and announced) first, so an `advance` that follows wakes it; only a
    /// cancelled sleeper ends early.
    public func sleep(until deadline: ContinuousClock.Instant) async throws {
        let (id, call) = state.withLock { state -> (UInt64, SleepCall) in
            state.nextID += 1
            state.sleeps.append(deadline - state.now)
            if deadline > state.now { state.sleepers.append(Sleeper(id: state.nextID, deadline: deadline)) }
            return (state.nextID, SleepCall(duration: deadline - state.now, deadline: deadline))
        }
        announcements.yield(call)
        defer { state.withLock { $0.sleepers.removeAll { $0.id == id } } }
        if Task.isCancelled { throw CancellationError() }
        try await state.wait { $0.now >= deadline }
    }

    /// Moves both clocks on; every sleeper whose deadline has come wakes.
    public func advance(by duration: Duration) {
        state.withLock { state in
            state.now += duration
            state.wallClockMilliseconds += duration.wholeMilliseconds
            let now = state.now
            state.sleepers.removeAll { $0.deadline <= now }
        }
    }

    /// Returns once at least `count` tasks sleep on this clock (awaiting their
    /// announcement, not polling); throws `WaitTimeout` after `timeout` of real time.
    public func waitForSleepers(_ count: Int = 1, timeout: Duration = .seconds(10)) async throws {
        try await state.wait("\(count) sleeper(s) on the test clock", timeout: timeout) { $0.sleepers.count >= count }
    }

    /// Returns once `total` sleeps in all have begun on this clock since it was made.
    public func waitForSleepCalls(_ total: Int, timeout: Duration = .seconds(10)) async throws {
        try await state.wait("\(total) sleep call(s) on the test clock", timeout: timeout) { $0.sleeps.count >= total }
    }

    /// Whether `total` sleeps in all begin within `timeout`: for checking that code does
    /// not start another wait (it returns at once when it does).
    public func sleepCallsReach(_ total: Int, within timeout: Duration) async -> Bool {
        await state.becomes(within: timeout) { $0.sleeps.count >= total }
    }
}
