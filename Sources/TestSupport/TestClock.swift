import RelayCore
import Synchronization

/// A clock tests move by hand: `sleep` returns only when `advance` passes its deadline,
/// so backoff, `Retry-After`, ages and deadlines are checked in milliseconds of real time.
/// It starts at a real instant and a fixed wall-clock time, and both move together.
public final class TestClock: RelayClock {
    private struct Sleeper {
        var id: UInt64
        var deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: ContinuousClock.Instant
        var wallClockMilliseconds: Int64
        var sleepers: [Sleeper] = []
        var nextID: UInt64 = 0
        /// Every deadline ever slept until, in order: what tests assert backoff with.
        var sleeps: [Duration] = []
    }

    private let state: Mutex<State>

    public init(wallClockMilliseconds: Int64 = 1_800_000_000_000) {
        state = Mutex(State(now: .now, wallClockMilliseconds: wallClockMilliseconds))
    }

    public var now: ContinuousClock.Instant { state.withLock { $0.now } }
    public var wallClockMilliseconds: Int64 { state.withLock { $0.wallClockMilliseconds } }

    /// How long each sleep asked for, from the moment it began, in call order.
    public var sleeps: [Duration] { state.withLock { $0.sleeps } }

    /// Tasks sleeping now.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// The earliest deadline a task sleeps until, relative to now.
    public var nextDeadline: Duration? {
        state.withLock { state in state.sleepers.map(\.deadline).min().map { $0 - state.now } }
    }

    public func sleep(until deadline: ContinuousClock.Instant) async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            state.sleeps.append(deadline - state.now)
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let immediate = state.withLock { state -> (any Error)?? in
                    if Task.isCancelled { return .some(CancellationError()) }
                    if deadline <= state.now { return .some(nil) }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return nil
                }
                switch immediate {
                case .some(.some(let error)): continuation.resume(throwing: error)
                case .some(.none): continuation.resume()
                case .none: break
                }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return state.sleepers.remove(at: index)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves both clocks on and wakes every sleeper whose deadline has come.
    public func advance(by duration: Duration) {
        let due = state.withLock { state -> [Sleeper] in
            state.now += duration
            state.wallClockMilliseconds += duration.wholeMilliseconds
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Waits (yielding, in real time) until at least `count` tasks sleep on this clock.
    public func waitForSleepers(_ count: Int = 1, timeout: Duration = .seconds(10)) async throws {
        let giveUp = ContinuousClock.now + timeout
        while sleeperCount < count {
            guard ContinuousClock.now < giveUp else { throw TestClockTimeout(expected: count, found: sleeperCount) }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}

public struct TestClockTimeout: Error, CustomStringConvertible {
    public var expected: Int
    public var found: Int
    public var description: String { "expected \(expected) sleeper(s) on the test clock, found \(found)" }
}
