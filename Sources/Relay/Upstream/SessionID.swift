import Synchronization

/// The per-process session id the Go extension adds to legacy `/ingest` uploads, so
/// profiles from one Lambda execution environment can be told apart.
public struct SessionID: Sendable, Equatable, CustomStringConvertible {
    public static let labelName = "__session_id__"

    public var value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public static func random() -> SessionID {
        var generator = SystemRandomNumberGenerator()
        return SessionID(generator.next())
    }

    /// 16 hex digits of the little-endian bytes, as Go's `sessionid.ID.String()`.
    public var description: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(16)
        for shift in stride(from: 0, to: 64, by: 8) {
            let byte = UInt8(truncatingIfNeeded: value >> UInt64(shift))
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The session id of this execution environment: made at first use, and anew after a
/// SnapStart restore, so environments restored from one snapshot never share one (an id
/// made during init would be cloned into every copy).
public final class SessionIdentity: Sendable {
    private let state: Mutex<SessionID?>

    /// - Parameter fixed: an id to use until the first `renew()` (tests); nil: random.
    public init(_ fixed: SessionID? = nil) {
        state = Mutex(fixed)
    }

    public var current: SessionID {
        state.withLock { id in
            if let id { return id }
            let made = SessionID.random()
            id = made
            return made
        }
    }

    /// Forgets the id; the next use makes a new one from fresh randomness.
    public func renew() {
        state.withLock { $0 = nil }
    }
}
