import Synchronization

extension Mutex where Value: ~Copyable {
    /// Suspends the calling task in the guarded state until whoever finds it there resumes
    /// it: the one "park a continuation, take it back on cancel" of the relay (senders
    /// waiting for work, flushes, deliveries waiting out a hold, waits for credentials and
    /// for `platform.runtimeDone`).
    ///
    /// `park` runs under the lock: it stores the continuation and returns nil, or returns
    /// the value to go on with at once. A task cancelled before it parks gets `cancelled` at
    /// once; cancelled while parked, `unpark` takes its continuation back out (nil if it was
    /// resumed already) and it gets `cancelled`. Both run under the same lock, so a waiter is
    /// never left parked after its cancellation. Callers tell their waiters apart by an id
    /// both closures capture.
    public func park<Result: Sendable>(
        cancelled: Result,
        _ park: (inout Value, CheckedContinuation<Result, Never>) -> Result?,
        unpark: @Sendable (inout Value) -> CheckedContinuation<Result, Never>?
    ) async -> Result {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result, Never>) in
                let immediate = withLock { state -> Result? in
                    Task.isCancelled ? cancelled : park(&state, continuation)
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            withLock { unpark(&$0) }?.resume(returning: cancelled)
        }
    }
}
