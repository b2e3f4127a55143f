import Synchronization

extension DeliveryPipeline {
    /// Suspends the calling task in the pipeline's state until whoever finds it there
    /// resumes it: a sender waiting for work, a flush, a delivery waiting out a hold.
    ///
    /// `park` runs under the lock with a fresh waiter id: it stores the continuation and
    /// returns nil, or returns the value to go on with at once. A task cancelled before it
    /// parks gets `cancelled` at once; cancelled while parked, `unpark` takes its
    /// continuation back out (nil if it was already resumed) and it gets `cancelled`. Both
    /// run under the same lock, so a waiter is never left parked after its cancellation.
    func park<Value: Sendable>(
        cancelled: Value,
        _ park: (inout PipelineState, UInt64, CheckedContinuation<Value, Never>) -> Value?,
        unpark: @escaping @Sendable (inout PipelineState, UInt64) -> CheckedContinuation<Value, Never>?
    ) async -> Value {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Value, Never>) in
                let immediate = state.withLock { state -> Value? in
                    Task.isCancelled ? cancelled : park(&state, id, continuation)
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            state.withLock { unpark(&$0, id) }?.resume(returning: cancelled)
        }
    }
}
