import NIOCore
import Synchronization

/// Counts the open client connections against a cap below the process's file-descriptor
/// limit, so idle or slow clients can never take the descriptors the relay needs for its
/// upstream, its spool and `/healthz`. At the cap, a newcomer takes the place of the
/// connection idle longest (waiting for its next request, or still sending a head after
/// `slowHeadGrace`), as nginx reuses keep-alive connections; only when every connection
/// is busy with a request is the newcomer answered `503`.
final class ConnectionLimiter: Sendable {
    enum Phase: Sendable {
        /// Waiting for a request: nothing of it read yet.
        case idle
        /// A request head is arriving.
        case head
        /// Reading a body or answering: never closed to make room.
        case busy
    }

    enum Admission {
        case admitted
        /// Admitted; the caller closes this connection to make room.
        case admittedReplacing(any Channel)
        case refused
    }

    private struct Entry {
        var channel: any Channel
        var phase: Phase
        var since: NIODeadline
    }

    let limit: Int
    private let slowHeadGrace: TimeAmount
    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

    init(limit: Int, slowHeadGrace: Duration) {
        self.limit = max(1, limit)
        self.slowHeadGrace = TimeAmount(slowHeadGrace)
    }

    var openCount: Int { entries.withLock { $0.count } }

    /// Open connections in `phase` now.
    func count(in phase: Phase) -> Int { entries.withLock { $0.values.filter { $0.phase == phase }.count } }

    /// Registers a new connection (idle), making room if needed.
    func open(_ channel: any Channel, now: NIODeadline = .now()) -> Admission {
        entries.withLock { entries in
            var replaced: (any Channel)?
            if entries.count >= limit {
                guard let victim = Self.replaceable(in: entries, now: now, slowHeadGrace: slowHeadGrace) else { return .refused }
                replaced = entries.removeValue(forKey: victim)?.channel
            }
            entries[ObjectIdentifier(channel)] = Entry(channel: channel, phase: .idle, since: now)
            return replaced.map { .admittedReplacing($0) } ?? .admitted
        }
    }

    /// The connection idle longest; else the one sending its head longest, past the grace.
    private static func replaceable(in entries: [ObjectIdentifier: Entry], now: NIODeadline, slowHeadGrace: TimeAmount) -> ObjectIdentifier? {
        var idle: (ObjectIdentifier, NIODeadline)?
        var slow: (ObjectIdentifier, NIODeadline)?
        for (id, entry) in entries {
            switch entry.phase {
            case .idle where idle == nil || entry.since < idle!.1: idle = (id, entry.since)
            case .head where now - entry.since >= slowHeadGrace && (slow == nil || entry.since < slow!.1): slow = (id, entry.since)
            default: break
            }
        }
        return idle?.0 ?? slow?.0
    }

    /// The connection's phase changed (on its own loop); a connection closed to make room
    /// is no longer listed and stays so.
    func update(_ channel: any Channel, to phase: Phase, now: NIODeadline = .now()) {
        entries.withLock { entries in
            let id = ObjectIdentifier(channel)
            guard entries[id] != nil else { return }
            entries[id]!.phase = phase
            entries[id]!.since = now
        }
    }

    func close(_ channel: any Channel) {
        _ = entries.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }
}
