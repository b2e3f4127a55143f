import Synchronization

/// The durations of the last upstream attempts, shared by every sender: at shutdown,
/// `DeliveryAttempts` starts no attempt that the slowest of them says cannot end before the
/// drain deadline.
final class RecentAttemptDurations: Sendable {
    /// Enough attempts to cover every sender's last few; old ones say little about now.
    static let remembered = 16
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
}
