import Synchronization

/// When the forwarder must stop draining at shutdown. In dev mode it is "now + drain
/// timeout" when the signal arrives; in Lambda the SHUTDOWN event's `deadlineMs` sets it
/// before the graceful shutdown begins.
public final class DrainDeadline: Sendable {
    private let instant = Mutex<ContinuousClock.Instant?>(nil)

    public init() {}

    public func set(_ deadline: ContinuousClock.Instant) { instant.withLock { $0 = deadline } }

    public var value: ContinuousClock.Instant? { instant.withLock { $0 } }
}
