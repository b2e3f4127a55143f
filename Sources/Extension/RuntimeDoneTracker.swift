import RelayCore
import Synchronization

/// Which invocations the runtime has finished, as told by `platform.runtimeDone`
/// Telemetry API events; the `end` flush strategy waits on it.
public final class RuntimeDoneTracker: Sendable {
    private struct State {
        var done: [String] = []  // most recent last, bounded
        var waiters: [(id: UInt64, requestID: String, continuation: CheckedContinuation<Void, Never>)] = []
        var nextID: UInt64 = 0
    }
    private let state = Mutex(State())

    public init() {}

    public func markDone(_ requestID: String) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.done.append(requestID)
            if state.done.count > 64 { state.done.removeFirst(state.done.count - 64) }
            var ready: [CheckedContinuation<Void, Never>] = []
            state.waiters.removeAll { waiter in
                if waiter.requestID == requestID { ready.append(waiter.continuation); return true }
                return false
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// Returns when `requestID` is done, or at once when cancelled.
    public func waitUntilDone(_ requestID: String) async {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        await state.park(cancelled: ()) { state, continuation in
            if state.done.contains(requestID) { return () }
            state.waiters.append((id, requestID, continuation))
            return nil
        } unpark: { state in
            state.waiters.firstIndex { $0.id == id }.map { state.waiters.remove(at: $0).continuation }
        }
    }
}
