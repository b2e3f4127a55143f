import RelayMetrics
import Synchronization

/// The relay's own accounting: what came in, what went out, what was dropped and why.
/// Counters read as one `Snapshot`; the metrics and stats features build on
/// them, and tests check that they add up.
public final class RelayCounters: Sendable {
    public struct Snapshot: Sendable, Equatable {
        /// Uploads whose whole body was read (local routes excluded).
        public var received = 0
        /// Uploads queued and acknowledged with 200.
        public var accepted = 0
        /// Refused at ingress with 413 (body over the limit).
        public var tooLarge = 0
        /// Requests that were not HTTP the relay could read (400).
        public var malformed = 0
        public var delivered = 0
        public var deliveredBytes = 0
        /// Attempts after the first, over all uploads.
        public var retries = 0
        public var dropped: [DropReason: Int] = [:]

        public var droppedTotal: Int { dropped.values.reduce(0, +) }
    }

    // One lock for all: updates are a few per upload, and a snapshot must be consistent
    // (received = accepted + refused) when tests and the stats line read it.
    private let state = Mutex(Snapshot())
    /// The same events as Prometheus counters, for `GET /metrics`.
    public let metrics: RelayMetrics

    public init(metrics: RelayMetrics = RelayMetrics(dropReasons: DropReason.allCases.map(\.rawValue))) {
        self.metrics = metrics
    }

    func recordReceived() {
        state.withLock { $0.received += 1 }
        metrics.uploadsReceived.increment()
    }
    func recordAccepted() {
        state.withLock { $0.accepted += 1 }
        metrics.uploadsAccepted.increment()
    }
    func recordTooLarge() {
        state.withLock { $0.tooLarge += 1 }
        metrics.uploadsTooLarge.increment()
    }
    func recordMalformed() {
        state.withLock { $0.malformed += 1 }
        metrics.malformedRequests.increment()
    }
    func recordDelivered(bytes: Int) {
        state.withLock {
            $0.delivered += 1
            $0.deliveredBytes += bytes
        }
        metrics.uploadsDelivered.increment()
        metrics.upstreamSentBytes.increment(by: Int64(bytes))
    }
    func recordRetry() {
        state.withLock { $0.retries += 1 }
        metrics.upstreamRetries.increment()
    }
    func recordDropped(_ reason: DropReason, count: Int = 1) {
        state.withLock { $0.dropped[reason, default: 0] += count }
        metrics.uploadsDropped(reason: reason.rawValue)?.increment(by: Int64(count))
    }

    public var snapshot: Snapshot { state.withLock { $0 } }
}
