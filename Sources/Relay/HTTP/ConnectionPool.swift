import NIOCore
import Synchronization

/// The client's connections: idle ones kept per origin and route (at most
/// `maxIdlePerKey`), every open one known so that shutdown closes them all.
final class ConnectionPool: Sendable {
    private struct State {
        var idle: [PoolKey: [HTTP1Connection]] = [:]
        var open: [ObjectIdentifier: HTTP1Connection] = [:]
        /// Raised by `discardAll`: connections made before are closed when released.
        var generation = 0
        var isShutDown = false
    }

    private let state = Mutex(State())
    let maxIdlePerKey: Int
    let idleTimeout: Duration

    init(maxIdlePerKey: Int, idleTimeout: Duration) {
        self.maxIdlePerKey = max(1, maxIdlePerKey)
        self.idleTimeout = idleTimeout
    }

    var generation: Int { state.withLock { $0.generation } }

    /// An idle connection for `key`, preferring one on `loop` (no thread hop for the
    /// caller), or nil: make one.
    func take(_ key: PoolKey, preferring loop: any EventLoop) throws(HTTP1ClientError) -> HTTP1Connection? {
        let taken: Result<HTTP1Connection?, HTTP1ClientError> = state.withLock { state in
            if state.isShutDown { return .failure(HTTP1ClientError(.shutDown, "the HTTP client is shut down")) }
            guard var connections = state.idle[key], !connections.isEmpty else { return .success(nil) }
            defer { state.idle[key] = connections }
            // A connection the server closed while idle is dropped here (its close also
            // removes it, but may not have run yet).
            connections.removeAll { $0.isClosed }
            let preferred = ObjectIdentifier(loop)
            let index = connections.lastIndex { ObjectIdentifier($0.channel.eventLoop) == preferred } ?? connections.indices.last
            return .success(index.map { connections.remove(at: $0) })
        }
        return try taken.get()
    }

    /// Records a new connection; false when the pool is shut down or was discarded while it
    /// was made (the caller closes it).
    func register(_ connection: HTTP1Connection) -> Bool {
        let accepted = state.withLock { state in
            guard !state.isShutDown, connection.generation == state.generation else { return false }
            state.open[ObjectIdentifier(connection)] = connection
            return true
        }
        guard accepted else { return false }
        connection.channel.closeFuture.whenComplete { [weak self] _ in self?.forget(connection) }
        return true
    }

    /// After a request: back to the idle list, or closed.
    func release(_ connection: HTTP1Connection, reusable: Bool) {
        let kept = state.withLock { state in
            guard reusable, !state.isShutDown, connection.generation == state.generation, !connection.isClosed,
                state.idle[connection.key, default: []].count < maxIdlePerKey
            else { return false }
            state.idle[connection.key, default: []].append(connection)
            return true
        }
        guard kept else { return connection.close() }
        if connection.markReleased(now: .now()) { scheduleIdleCheck(connection, at: .now() + TimeAmount(idleTimeout)) }
    }

    /// One timer per connection: at its end the connection is closed if it stayed idle the
    /// whole timeout, else checked again when the timeout would end (no timer per request).
    private func scheduleIdleCheck(_ connection: HTTP1Connection, at deadline: NIODeadline) {
        connection.channel.eventLoop.scheduleTask(deadline: deadline) { [weak self] in
            guard let self else { return }
            let now = NIODeadline.now()
            let next: NIODeadline? = state.withLock { state in
                if connection.isClosed { return nil }
                let idleSince = connection.releasedAt
                guard let index = state.idle[connection.key]?.firstIndex(where: { $0 === connection }) else {
                    return now + TimeAmount(idleTimeout)  // in use: look again later
                }
                if now - idleSince < TimeAmount(idleTimeout) { return idleSince + TimeAmount(idleTimeout) }
                state.idle[connection.key]?.remove(at: index)
                return nil
            }
            if let next { return scheduleIdleCheck(connection, at: next) }
            connection.disarmIdleTimer()
            connection.close()
        }
    }

    private func forget(_ connection: HTTP1Connection) {
        state.withLock { state in
            state.open[ObjectIdentifier(connection)] = nil
            state.idle[connection.key]?.removeAll { $0 === connection }
        }
    }

    /// Closes idle connections and retires the rest: they are closed once their request ends.
    func discardAll() {
        let idle = state.withLock { state in
            state.generation += 1
            defer { state.idle = [:] }
            return state.idle.values.flatMap { $0 }
        }
        for connection in idle { connection.close() }
    }

    /// Closes every connection, in use or not; later requests fail with `shutDown`.
    func shutdown() -> [EventLoopFuture<Void>] {
        let open = state.withLock { state in
            state.isShutDown = true
            state.idle = [:]
            return Array(state.open.values)
        }
        return open.map { connection in
            connection.close()
            return connection.channel.closeFuture
        }
    }
}
