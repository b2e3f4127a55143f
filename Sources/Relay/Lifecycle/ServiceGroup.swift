import Logging
import Synchronization

/// A long-lived piece of the relay: all its work is in `run()`, which returns once
/// `gracefulShutdown()` has returned and the work is drained (or throws).
package protocol Service: Sendable {
    func run() async throws
}

/// Runs services together and shuts them down gracefully, last first.
///
/// The relay's own, in place of swift-service-lifecycle's `ServiceGroup` with the same shape
/// and the rules the relay used: it brought swift-async-algorithms and swift-collections'
/// ordered and deque modules (1.3 MB of the 10.5 MB of code every cold start maps, about 200
/// of its 3,100 protocol conformances, which the Swift runtime scans at each first cast) and
/// cost 0.3 M instructions of the function's init to start (callgrind). Signals are watched
/// by `ShutdownSignals`, which calls `triggerGracefulShutdown()`.
///
/// - A service that returns while the group runs: per its `successTerminationBehavior`, the
///   group shuts down gracefully (the Lambda lifecycle after SHUTDOWN), is cancelled
///   (`serviceFinishedUnexpectedly`) or goes on.
/// - A service that throws: per its `failureTerminationBehavior`, the group is cancelled, or
///   shut down gracefully, and `run()` rethrows.
/// - Graceful shutdown: each service still running, from the last to the first, is told
///   (`gracefulShutdown()` returns in it) and awaited before the next is told.
package final class ServiceGroup: Sendable {
    package struct Configuration: Sendable {
        package var services: [ServiceConfiguration]
        package var logger: Logger

        package init(services: [ServiceConfiguration], logger: Logger) {
            self.services = services
            self.logger = logger
        }
    }

    package struct ServiceConfiguration: Sendable {
        package enum TerminationBehavior: Sendable {
            case cancelGroup, gracefullyShutdownGroup, ignore
        }
        package var service: any Service
        package var successTerminationBehavior: TerminationBehavior
        package var failureTerminationBehavior: TerminationBehavior
        package var serviceName: String

        package init(
            service: any Service, successTerminationBehavior: TerminationBehavior = .cancelGroup,
            failureTerminationBehavior: TerminationBehavior = .cancelGroup, serviceName: String
        ) {
            self.service = service
            self.successTerminationBehavior = successTerminationBehavior
            self.failureTerminationBehavior = failureTerminationBehavior
            self.serviceName = serviceName
        }
    }

    package struct ServiceFinishedUnexpectedly: Error, CustomStringConvertible {
        package var serviceName: String
        package var description: String { "service \(serviceName) finished while the group was running" }
    }

    private let configuration: Configuration
    /// Asked before or while the group runs; `run()` waits on it beside the services.
    private let shutdownRequested = GracefulShutdownFlag()

    package init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Shuts the services down gracefully, last first; before `run()`, as soon as it starts them.
    package func triggerGracefulShutdown() async {
        shutdownRequested.trigger()
    }

    private enum Event: Sendable {
        case finished(index: Int, error: (any Error)?)
        case shutdownRequested
    }

    package func run() async throws {
        let services = configuration.services
        let signals = services.map { _ in GracefulShutdownFlag() }
        let logger = configuration.logger
        let requested = shutdownRequested
        try await withThrowingTaskGroup(of: Event.self) { group in
            for (index, entry) in services.enumerated() {
                group.addTask {
                    do {
                        try await GracefulShutdownFlag.$current.withValue(signals[index]) { try await entry.service.run() }
                        return .finished(index: index, error: nil)
                    } catch {
                        return .finished(index: index, error: error)
                    }
                }
            }
            group.addTask {
                try await requested.wait()
                return .shutdownRequested
            }
            var running = Set(services.indices)
            var failure: (any Error)?

            func shutDownGracefully() async throws {
                for index in running.sorted(by: >) where running.contains(index) {
                    signals[index].trigger()
                    while running.contains(index) {
                        guard let event = try await group.next() else { return }
                        if case .finished(let finished, let error) = event {
                            running.remove(finished)
                            if let error, failure == nil, !(error is CancellationError) { failure = error }
                        }
                    }
                }
            }

            while !running.isEmpty, let event = try await group.next() {
                switch event {
                case .shutdownRequested:
                    logger.debug("Shutting the services down gracefully")
                    try await shutDownGracefully()
                case .finished(let index, let error):
                    running.remove(index)
                    let entry = services[index]
                    let behavior = error == nil ? entry.successTerminationBehavior : entry.failureTerminationBehavior
                    if let error { failure = failure ?? error }
                    switch behavior {
                    case .ignore:
                        continue
                    case .gracefullyShutdownGroup:
                        try await shutDownGracefully()
                    case .cancelGroup:
                        if error == nil { failure = ServiceFinishedUnexpectedly(serviceName: entry.serviceName) }
                        running.removeAll()
                    }
                }
            }
            group.cancelAll()
            if let failure { throw failure }
        }
    }
}

/// Waits until graceful shutdown is asked of the service this task runs: at once if it was
/// already. Throws `CancellationError` when the task is cancelled first; outside a group it
/// waits until then.
package func gracefulShutdown() async throws {
    // Outside a group nothing asks for it: only cancellation ends the wait.
    try await (GracefulShutdownFlag.current ?? GracefulShutdownFlag()).wait()
}

/// Runs `operation`, cancelled when graceful shutdown is asked of this task's service (then
/// throws `CancellationError`).
package func cancelWhenGracefulShutdown<T: Sendable>(_ operation: @Sendable @escaping () async throws -> T) async throws -> T {
    let signal = GracefulShutdownFlag.current ?? GracefulShutdownFlag()
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await signal.wait()
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw CancellationError() }
        return value
    }
}

/// A one-way flag with waiters: set once, every waiter (now and later) resumes.
final class GracefulShutdownFlag: Sendable {
    @TaskLocal static var current: GracefulShutdownFlag?

    private struct State {
        var triggered = false
        var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
        var nextID = 0
    }
    private let state = Mutex(State())

    func trigger() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.triggered = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async throws {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let now: Result<Void, any Error>? = state.withLock { state in
                    if state.triggered { return .success(()) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let now { continuation.resume(with: now) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
