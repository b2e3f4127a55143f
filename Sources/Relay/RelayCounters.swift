import RelayMetrics
import Synchronization

/// The relay's own accounting: what came in, what went out, what was dropped and why.
/// Counters read as one `Snapshot`; the metrics and stats features build on
/// them, and tests check that they add up.
public final class RelayCounters: Sendable {
    public struct Snapshot: Sendable, Equatable {
        /// Uploads whose whole body was read (local routes excluded), and the relay's own
        /// (self-profiles).
        public var received = 0
        /// Uploads found in the spool at start, left there by an earlier run.
        public var replayed = 0
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
        /// Resends after an attempt whose fate is unknown (see `recordResentUnknown`).
        public var resentUnknown = 0
        /// Delivered without an answer: sent whole, answer lost, not resent.
        public var unconfirmed = 0
        public var dropped: [DropReason: Int] = [:]
        /// Still in the spool when the process stopped: replayed by the next start.
        public var keptInSpool = 0

        public var droppedTotal: Int { dropped.values.reduce(0, +) }

        /// Refused when they arrived (the client was told 503): never accepted.
        public var refused: Int { (dropped[.queueFull] ?? 0) + (dropped[.misconfigured] ?? 0) }
    }

    // One lock for all: updates are a few per upload, and a snapshot must be consistent
    // (received = accepted + refused) when tests and the stats line read it.
    private let state = Mutex(Snapshot())
    /// The same events as Prometheus counters, for `GET /metrics`.
    public let metrics: RelayMetrics

    public init(metrics: RelayMetrics = RelayMetrics(dropReasons: DropReason.allCases.map(\.rawValue))) {
        self.metrics = metrics
    }

    func recordReceived(bytes: Int) {
        state.withLock { $0.received += 1 }
        metrics.uploadsReceived.increment()
        metrics.receivedBytes.increment(by: Int64(bytes))
    }
    func recordReplayed(_ count: Int) {
        state.withLock { $0.replayed += count }
    }
    func recordKeptInSpool(_ count: Int) {
        state.withLock { $0.keptInSpool += count }
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
    /// An upload whose answer was lost once it was sent whole, not sent again.
    func recordUnconfirmed() {
        state.withLock { $0.unconfirmed += 1 }
        metrics.uploadsUnconfirmed.increment()
    }
    /// An upload sent again after a timeout or a broken connection: the remote may have
    /// stored the first send too.
    func recordResentUnknown() {
        state.withLock { $0.resentUnknown += 1 }
        metrics.uploadsResentUnknown.increment()
    }
    func recordDropped(_ reason: DropReason, count: Int = 1) {
        state.withLock { $0.dropped[reason, default: 0] += count }
        metrics.uploadsDropped(reason: reason.rawValue)?.increment(by: Int64(count))
    }

    /// Upload relayed without the Lambda labels: counted on `/metrics` only (a property of
    /// the upload's shape, not of its delivery).
    func recordLabelsNotApplied(_ reason: LabelsNotAppliedReason) {
        metrics.labelsNotApplied(reason: reason).increment()
    }

    public var snapshot: Snapshot { state.withLock { $0 } }

    /// The most recent latencies, for p50/p99 in the stats line (histogram buckets are too
    /// coarse for that); bounded so memory does not grow with traffic.
    private let answerSamples = Mutex(LatencySamples())
    private let upstreamSamples = Mutex(LatencySamples())
    private let flushSamples = Mutex(LatencySamples())

    func recordAnswer(_ duration: Duration) {
        answerSamples.withLock { $0.add(duration) }
        metrics.answerDuration.record(duration)
    }

    func recordUpstream(_ duration: Duration) {
        upstreamSamples.withLock { $0.add(duration) }
        metrics.upstreamDuration.record(duration)
    }

    /// How long an invocation's flush held back the next Lambda event.
    public func recordFlush(_ duration: Duration) {
        flushSamples.withLock { $0.add(duration) }
        metrics.lambdaFlushDuration.record(duration)
    }

    /// p50 and p99 in milliseconds of recent invocation flushes, and how many were sampled.
    public var flushPercentiles: (p50: Double, p99: Double, count: Int) {
        flushSamples.withLock { samples in
            let (p50, p99) = samples.percentiles()
            return (p50, p99, samples.total)
        }
    }

    /// p50 and p99 in milliseconds of the recent answers to profilers and upstream attempts.
    public var latencyPercentiles: (answerP50: Double, answerP99: Double, upstreamP50: Double, upstreamP99: Double) {
        let answers = answerSamples.withLock { $0.percentiles() }
        let upstream = upstreamSamples.withLock { $0.percentiles() }
        return (answers.p50, answers.p99, upstream.p50, upstream.p99)
    }
}
