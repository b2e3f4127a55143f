import CGlibc
import Synchronization

/// Gives the memory of relayed uploads back to the system once the queue has drained.
///
/// glibc keeps freed heap memory for reuse: after a burst (a backlog sent after a thaw,
/// a flood) the relay kept its peak, tens of MB of the function's memory, for the rest
/// of the environment's life. `malloc_trim` returns free pages; it walks the heap, so
/// it runs only when the queue is empty and at least `threshold` bytes went through
/// since the last time.
final class MemoryRelease: Sendable {
    static let threshold = 4 << 20
    private let sentSinceTrim = Mutex(0)

    func sent(bytes: Int, queueIdle: Bool) {
        let due = sentSinceTrim.withLock { sent -> Bool in
            sent += bytes
            guard queueIdle, sent >= Self.threshold else { return false }
            sent = 0
            return true
        }
        if due { Self.trim() }
    }

    /// glibc's `malloc_trim` (through CGlibc: Swift's Glibc module does not import
    /// `malloc.h`).
    static func trim() {
        _ = cglibc_malloc_trim(0)
    }
}
