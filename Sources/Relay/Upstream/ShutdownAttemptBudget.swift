import Synchronization

/// Whether an upstream attempt started now can end before the drain deadline, judged by
/// the slowest of the last attempts.
///
/// At shutdown an attempt that cannot end in time is not started: the remote would record
/// the upload while its answer came after Lambda's deadline, so the relay would count as
/// dropped what the remote has (seen with a remote taking 500 ms per answer: 24 recorded,
/// 19 counted delivered). Attempts already in flight keep running until the deadline.
final class ShutdownAttemptBudget: Sendable {
    /// Enough attempts to cover every sender's last few; old ones say little about now.
    static let remembered = 16
    /// Over the slowest recent attempt: a machine busy draining answers a little later.
    static let slack = 1.5

    private let recent = Mutex<(durations: [Duration], next: Int)>(([], 0))

    func record(_ duration: Duration) {
        recent.withLock { recent in
            if recent.durations.count < Self.remembered {
                recent.durations.append(duration)
            } else {
                recent.durations[recent.next] = duration
            }
            recent.next = (recent.next + 1) % Self.remembered
        }
    }

    /// The slowest of the remembered attempts (zero before the first).
    var slowestRecent: Duration { recent.withLock { $0.durations.max() } ?? .zero }

    /// - Parameters:
    ///   - start: when the attempt would start (now, or after a backoff).
    ///   - deadline: the drain deadline; nil: none is set, so there is time.
    func allowsAttempt(startingAt start: ContinuousClock.Instant, deadline: ContinuousClock.Instant?) -> Bool {
        guard let deadline else { return true }
        return start + slowestRecent * Self.slack <= deadline
    }
}
