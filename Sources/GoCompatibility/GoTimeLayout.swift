/// A Go `Time.Format` layout, tokenised once so each line only walks a small array.
///
/// Scanning follows Go's `nextStdChunk` rule by rule: at each byte the first matching
/// rule wins, otherwise the byte is literal (there is no escape character).
public struct GoTimeLayout: Sendable {
    /// Go's `time.RFC3339`, logrus' default when the layout is empty.
    public static let rfc3339 = "2006-01-02T15:04:05Z07:00"

    enum Token: Sendable, Equatable {
        case literal([UInt8])
        case longMonth, month, numMonth, zeroMonth
        case longWeekDay, weekDay
        case day, underDay, zeroDay, underYearDay, zeroYearDay
        case hour, hour12, zeroHour12
        case minute, zeroMinute, second, zeroSecond
        case longYear, year
        case pm, pmLower
        case tz
        /// Numeric offsets. `iso` prints `Z` for a zero offset; `colon` puts `:`
        /// between fields; `minutes`/`seconds` say which fields follow the hours.
        case offset(iso: Bool, colon: Bool, minutes: Bool, seconds: Bool)
        /// Fractional seconds: separator byte, digit count as Go stores it (masked to
        /// 12 bits), and whether it is the trailing-zero-stripping `9` form.
        case fraction(separator: UInt8, digits: Int, trim: Bool)
    }

    let tokens: [Token]
    /// The layout text as given.
    public let layout: String

    public init(_ layout: String) {
        self.layout = layout
        tokens = GoTimeLayout.tokenize(Array(layout.utf8))
    }

    static func tokenize(_ l: [UInt8]) -> [Token] {
        var tokens: [Token] = []
        var literal: [UInt8] = []
        func has(_ i: Int, _ s: StaticString) -> Bool {
            let n = s.utf8CodeUnitCount
            guard l.count - i >= n else { return false }
            let p = s.utf8Start
            for k in 0..<n where l[i + k] != p[k] { return false }
            return true
        }
        func lowerAt(_ i: Int) -> Bool { i < l.count && l[i] >= 0x61 && l[i] <= 0x7A }
        func digitAt(_ i: Int) -> Bool { i < l.count && l[i] >= 0x30 && l[i] <= 0x39 }

        var i = 0
        while i < l.count {
            var token: Token?
            var width = 0
            switch l[i] {
            case UInt8(ascii: "J"):
                if has(i, "Jan") {
                    if has(i, "January") { token = .longMonth; width = 7 } else if !lowerAt(i + 3) { token = .month; width = 3 }
                }
            case UInt8(ascii: "M"):
                if has(i, "Mon") {
                    if has(i, "Monday") { token = .longWeekDay; width = 6 } else if !lowerAt(i + 3) { token = .weekDay; width = 3 }
                }
                if token == nil && has(i, "MST") { token = .tz; width = 3 }
            case UInt8(ascii: "0"):
                if i + 1 < l.count && l[i + 1] >= UInt8(ascii: "1") && l[i + 1] <= UInt8(ascii: "6") {
                    let table: [Token] = [.zeroMonth, .zeroDay, .zeroHour12, .zeroMinute, .zeroSecond, .year]
                    token = table[Int(l[i + 1] - UInt8(ascii: "1"))]
                    width = 2
                } else if has(i, "002") {
                    token = .zeroYearDay; width = 3
                }
            case UInt8(ascii: "1"):
                if has(i, "15") { token = .hour; width = 2 } else { token = .numMonth; width = 1 }
            case UInt8(ascii: "2"):
                if has(i, "2006") { token = .longYear; width = 4 } else { token = .day; width = 1 }
            case UInt8(ascii: "_"):
                if has(i, "_2") {
                    if has(i, "_2006") {
                        // A literal `_` followed by the year.
                        literal.append(UInt8(ascii: "_"))
                        i += 1
                        token = .longYear; width = 4
                    } else {
                        token = .underDay; width = 2
                    }
                } else if has(i, "__2") {
                    token = .underYearDay; width = 3
                }
            case UInt8(ascii: "3"): token = .hour12; width = 1
            case UInt8(ascii: "4"): token = .minute; width = 1
            case UInt8(ascii: "5"): token = .second; width = 1
            case UInt8(ascii: "P"):
                if has(i, "PM") { token = .pm; width = 2 }
            case UInt8(ascii: "p"):
                if has(i, "pm") { token = .pmLower; width = 2 }
            case UInt8(ascii: "-"), UInt8(ascii: "Z"):
                let iso = l[i] == UInt8(ascii: "Z")
                if has(i + 1, "070000") {
                    token = .offset(iso: iso, colon: false, minutes: true, seconds: true); width = 7
                } else if has(i + 1, "07:00:00") {
                    token = .offset(iso: iso, colon: true, minutes: true, seconds: true); width = 9
                } else if has(i + 1, "0700") {
                    token = .offset(iso: iso, colon: false, minutes: true, seconds: false); width = 5
                } else if has(i + 1, "07:00") {
                    token = .offset(iso: iso, colon: true, minutes: true, seconds: false); width = 6
                } else if has(i + 1, "07") {
                    token = .offset(iso: iso, colon: false, minutes: false, seconds: false); width = 3
                }
            case UInt8(ascii: "."), UInt8(ascii: ","):
                if i + 1 < l.count && (l[i + 1] == UInt8(ascii: "0") || l[i + 1] == UInt8(ascii: "9")) {
                    let ch = l[i + 1]
                    var j = i + 1
                    while j < l.count && l[j] == ch { j += 1 }
                    // Only a fraction if the run is not followed by another digit.
                    if !digitAt(j) {
                        token = .fraction(separator: l[i], digits: (j - (i + 1)) & 0xfff, trim: ch == UInt8(ascii: "9"))
                        width = j - i
                    }
                }
            default:
                break
            }
            if let token {
                if !literal.isEmpty {
                    tokens.append(.literal(literal))
                    literal.removeAll()
                }
                tokens.append(token)
                i += width
            } else {
                literal.append(l[i])
                i += 1
            }
        }
        if !literal.isEmpty { tokens.append(.literal(literal)) }
        return tokens
    }

    /// Formats an instant (Unix seconds + nanoseconds) at a zone offset, as Go's
    /// `Time.Format` does for a time in a location with that offset and name.
    public func format(unixSeconds: Int64, nanoseconds: Int32, zone offsetSeconds: Int, zoneName: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(40)
        append(to: &out, unixSeconds: unixSeconds, nanoseconds: nanoseconds, zone: offsetSeconds, zoneName: zoneName)
        return String(decoding: out, as: UTF8.self)
    }

    /// Same as `format`, appending to a byte buffer (no intermediate String).
    public func append(
        to b: inout [UInt8], unixSeconds: Int64, nanoseconds: Int32, zone offset: Int, zoneName: String
    ) {
        let local = unixSeconds &+ Int64(offset)
        let days = floorDiv(local, 86400)
        let secOfDay = Int(local - days * 86400)
        let hour = secOfDay / 3600
        let minute = secOfDay / 60 % 60
        let second = secOfDay % 60
        // Only compute the calendar date when a token needs it.
        var dateCache: (year: Int64, month: Int, day: Int)?
        @inline(__always) func date() -> (year: Int64, month: Int, day: Int) {
            if let dateCache { return dateCache }
            let d = civilFromDays(days)
            dateCache = d
            return d
        }
        func yday() -> Int {
            let d = date()
            return daysBeforeMonth[d.month - 1] + d.day + (isLeap(d.year) && d.month > 2 ? 1 : 0)
        }
        let nanos = Int(nanoseconds)

        for token in tokens {
            switch token {
            case .literal(let bytes): b.append(contentsOf: bytes)
            case .year:
                let y = date().year
                appendGoInt(&b, Int(y < 0 ? -y : y) % 100, width: 2)
            case .longYear: appendGoInt(&b, Int(date().year), width: 4)
            case .month: b.append(contentsOf: monthNames[date().month - 1].utf8.prefix(3))
            case .longMonth: b.append(contentsOf: monthNames[date().month - 1].utf8)
            case .numMonth: appendGoInt(&b, date().month, width: 0)
            case .zeroMonth: appendGoInt(&b, date().month, width: 2)
            case .weekDay: b.append(contentsOf: dayNames[weekday(days)].utf8.prefix(3))
            case .longWeekDay: b.append(contentsOf: dayNames[weekday(days)].utf8)
            case .day: appendGoInt(&b, date().day, width: 0)
            case .underDay:
                let d = date().day
                if d < 10 { b.append(UInt8(ascii: " ")) }
                appendGoInt(&b, d, width: 0)
            case .zeroDay: appendGoInt(&b, date().day, width: 2)
            case .underYearDay:
                let yd = yday()
                if yd < 100 {
                    b.append(UInt8(ascii: " "))
                    if yd < 10 { b.append(UInt8(ascii: " ")) }
                }
                appendGoInt(&b, yd, width: 0)
            case .zeroYearDay: appendGoInt(&b, yday(), width: 3)
            case .hour: appendGoInt(&b, hour, width: 2)
            case .hour12:
                let h = hour % 12
                appendGoInt(&b, h == 0 ? 12 : h, width: 0)
            case .zeroHour12:
                let h = hour % 12
                appendGoInt(&b, h == 0 ? 12 : h, width: 2)
            case .minute: appendGoInt(&b, minute, width: 0)
            case .zeroMinute: appendGoInt(&b, minute, width: 2)
            case .second: appendGoInt(&b, second, width: 0)
            case .zeroSecond: appendGoInt(&b, second, width: 2)
            case .pm: b.append(contentsOf: hour >= 12 ? [0x50, 0x4D] : [0x41, 0x4D])
            case .pmLower: b.append(contentsOf: hour >= 12 ? [0x70, 0x6D] : [0x61, 0x6D])
            case .offset(let iso, let colon, let withMinutes, let withSeconds):
                if iso && offset == 0 {
                    b.append(UInt8(ascii: "Z"))
                    break
                }
                // Go: hours and minutes from the offset truncated to minutes, the
                // sign from that minute count; seconds from the raw offset.
                var zone = offset / 60
                var absOffset = offset
                if zone < 0 {
                    b.append(UInt8(ascii: "-"))
                    zone = -zone
                    absOffset = -absOffset
                } else {
                    b.append(UInt8(ascii: "+"))
                }
                appendGoInt(&b, zone / 60, width: 2)
                if colon { b.append(UInt8(ascii: ":")) }
                if withMinutes { appendGoInt(&b, zone % 60, width: 2) }
                if withSeconds {
                    if colon { b.append(UInt8(ascii: ":")) }
                    appendGoInt(&b, absOffset % 60, width: 2)
                }
            case .tz:
                if !zoneName.isEmpty {
                    b.append(contentsOf: zoneName.utf8)
                    break
                }
                var zone = offset / 60
                if zone < 0 {
                    b.append(UInt8(ascii: "-"))
                    zone = -zone
                } else {
                    b.append(UInt8(ascii: "+"))
                }
                appendGoInt(&b, zone / 60, width: 2)
                appendGoInt(&b, zone % 60, width: 2)
            case .fraction(let separator, let n, let trim):
                // Go's appendNano: truncate to n digits (9 at most), never round.
                if trim && (n == 0 || nanos == 0) { break }
                b.append(separator)
                let start = b.count
                appendGoInt(&b, nanos, width: 9)
                if n < 9 { b.removeLast(9 - n) }
                if trim {
                    while b.count > start && b[b.count - 1] == UInt8(ascii: "0") { b.removeLast() }
                    if b.count == start { b.removeLast() }  // drop the separator too
                }
            }
        }
    }
}

private let monthNames = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]
private let dayNames = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

/// 1970-01-01 was a Thursday (4, with Sunday 0).
@inline(__always)
private func weekday(_ days: Int64) -> Int {
    Int((days % 7 + 11) % 7)
}

/// Go's `time.appendInt` (also how Go prints integers): a `-` for negatives, zero padding to `width`.
@inline(__always)
public func appendGoInt(_ b: inout [UInt8], _ x: Int, width: Int) {
    var u = UInt(bitPattern: x)
    if x < 0 {
        b.append(UInt8(ascii: "-"))
        u = 0 &- u
    }
    if width == 2 && u < 100 {
        b.append(0x30 + UInt8(u / 10))
        b.append(0x30 + UInt8(u % 10))
        return
    }
    if width == 4 && u < 10000 {
        b.append(0x30 + UInt8(u / 1000))
        b.append(0x30 + UInt8(u / 100 % 10))
        b.append(0x30 + UInt8(u / 10 % 10))
        b.append(0x30 + UInt8(u % 10))
        return
    }
    var digits = 0
    var t = u
    repeat { digits += 1; t /= 10 } while t > 0
    if width > digits { b.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: width - digits)) }
    let start = b.count
    b.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: digits))
    var i = start + digits - 1
    repeat {
        b[i] = 0x30 + UInt8(u % 10)
        u /= 10
        i -= 1
    } while u > 0
}
