import RelayCore
import Synchronization

/// A wait that did not end in time; says what was awaited.
public struct WaitTimeout: Error, CustomStringConvertible {
    public var what: String
    public var timeout: Duration
    public init(_ what: String, timeout: Duration) {
        self.what = what
        self.timeout = timeout
    }
    public var description: String { "\(what): not within \(timeout)" }
}

/// A value tests wait on: each change made through `withLock` resumes the waits whose
/// condition now holds, so a test awaits the event instead of polling for it.
public final class Watched<Value: Sendable>: Sendable {
    private struct Waiter {
        var id: UInt64
        var condition: @Sendable (Value) -> Bool
        /// Resumed with true when the condition holds; false when the wait was cancelled.
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var value: Value
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
    }

    private let state: Mutex<State>

    public init(_ value: Value) { state = Mutex(State(value: value)) }

    public var value: Value { state.withLock { $0.value } }

    /// Changes the value; waits whose condition now holds return.
    @discardableResult
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        let (result, ready) = try state.withLock { state -> (R, [CheckedContinuation<Bool, Never>]) in
            let result = try body(&state.value)
            var ready: [CheckedContinuation<Bool, Never>] = []
            let value = state.value
            state.waiters.removeAll { waiter in
                guard waiter.condition(value) else { return false }
                ready.append(waiter.continuation)
                return true
            }
            return (result, ready)
        }
        for continuation in ready { continuation.resume(returning: true) }
        return result
    }

    /// Returns once `condition` holds; throws `CancellationError` when the task is cancelled.
    public func wait(until condition: @escaping @Sendable (Value) -> Bool) async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        let held = await state.park(cancelled: false) { state, continuation in
            if condition(state.value) { return true }
            state.waiters.append(Waiter(id: id, condition: condition, continuation: continuation))
            return nil
        } unpark: { state in
            state.waiters.firstIndex { $0.id == id }.map { state.waiters.remove(at: $0).continuation }
        }
        if !held { throw CancellationError() }
    }

    /// Returns once `condition` holds; throws `WaitTimeout` after `timeout` of real time.
    public func wait(
        _ what: @autoclosure () -> String = "condition", timeout: Duration = .seconds(10), until condition: @escaping @Sendable (Value) -> Bool
    ) async throws {
        try await withTimeout(timeout, what()) { try await self.wait(until: condition) }
    }

    /// Whether `condition` comes to hold within `timeout`: for checking that something
    /// does not happen, this returns as soon as it does (a failing test fails fast).
    public func becomes(within timeout: Duration, _ condition: @escaping @Sendable (Value) -> Bool) async -> Bool {
        (try? await withTimeout(timeout, "") { try await self.wait(until: condition) }) != nil
    }
}

/// Runs `operation`, cancelling it and throwing `WaitTimeout` once `timeout` of real time
/// passed first. `operation` must end when cancelled (`Watched.wait` does).
public func withTimeout<T: Sendable>(
    _ timeout: Duration, _ what: @autoclosure () -> String = "operation", _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let description = what()
    return try await firstOf(operation) {
        // The deadline every bounded wait of the tests races against: the one real-time
        // sleep of the waits that have an event to wait for.
        try await Task.sleep(for: timeout)
        throw WaitTimeout(description, timeout: timeout)
    }
}

/// Whichever of two operations ends first (returning or throwing); the other is cancelled
/// and awaited, so both must end when cancelled.
public func firstOf<T: Sendable>(
    _ first: @escaping @Sendable () async throws -> T, _ second: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask(operation: first)
        group.addTask(operation: second)
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// Checks `condition` until it holds, for state that announces nothing (a child process,
/// a file, a scrape over HTTP); throws `WaitTimeout` after `timeout` of real time.
public func eventually(
    _ what: @autoclosure () -> String = "condition", timeout: Duration = .seconds(20), every interval: Duration = .milliseconds(20),
    _ condition: () async throws -> Bool
) async throws {
    let giveUp = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < giveUp else { throw WaitTimeout(what(), timeout: timeout) }
        // The polling interval: what changes here tells no one, so it is looked at again.
        try await Task.sleep(for: interval)
    }
}
