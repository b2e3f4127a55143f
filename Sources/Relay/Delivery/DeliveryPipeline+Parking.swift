import Synchronization

extension DeliveryPipeline {
    /// Suspends the calling task in the pipeline's state (see `Mutex.park`) with a fresh
    /// waiter id, which both closures get: a sender waiting for work, a flush, a delivery
    /// waiting out a hold.
    func park<Value: Sendable>(
        cancelled: Value,
        _ park: (inout PipelineState, UInt64, CheckedContinuation<Value, Never>) -> Value?,
        unpark: @escaping @Sendable (inout PipelineState, UInt64) -> CheckedContinuation<Value, Never>?
    ) async -> Value {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        return await state.park(cancelled: cancelled) {
            park(&$0, id, $1)
        } unpark: {
            unpark(&$0, id)
        }
    }
}
