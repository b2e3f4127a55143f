import GoCompatibility
import Synchronization

/// What the Telemetry API told of the environment's init and restore, which the Extensions
/// API does not tell extensions: `platform.initRuntimeDone` (the function's init finished)
/// and `platform.restoreStart` (a SnapStart restore began).
public final class PlatformMilestones: Sendable {
    private struct State {
        var functionInitDone = false
        var restoreStart: Int64?
    }
    private let state = Mutex(State())

    public init() {}

    public var functionInitDone: Bool { state.withLock { $0.functionInitDone } }

    /// Unix milliseconds of the restore's start; nil until Telemetry reported one.
    public var restoreStartUnixMilliseconds: Int64? { state.withLock { $0.restoreStart } }

    func markFunctionInitDone() {
        state.withLock { $0.functionInitDone = true }
    }

    func markRestoreStart(unixMilliseconds: Int64) {
        state.withLock { $0.restoreStart = unixMilliseconds }
    }

    /// A Telemetry `time` (`2026-11-24T00:00:00.000Z`, RFC 3339 in UTC) in Unix milliseconds.
    static func unixMilliseconds(rfc3339 text: String) -> Int64? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= bytes.count, range.allSatisfy({ (48...57).contains(bytes[$0]) }) else { return nil }
            return range.reduce(0) { $0 * 10 + Int(bytes[$1] - 48) }
        }
        guard bytes.count >= 20, bytes.last == UInt8(ascii: "Z"), let year = number(0..<4), let month = number(5..<7),
            let day = number(8..<10), let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19)
        else { return nil }
        var milliseconds = 0
        if bytes[19] == UInt8(ascii: ".") {
            let digits = bytes[20..<(bytes.count - 1)].prefix(3)
            guard let fraction = number(20..<(20 + digits.count)) else { return nil }
            milliseconds = fraction * [100, 10, 1][digits.count - 1]
        }
        let days = GoCalendar.daysSinceEpoch(year: Int64(year), month: month, day: day)
        return (days * 86400 + Int64(hour * 3600 + minute * 60 + second)) * 1000 + Int64(milliseconds)
    }
}
