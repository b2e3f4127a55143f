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
