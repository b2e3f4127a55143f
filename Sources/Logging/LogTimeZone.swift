#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A time zone as Go's `time.Location` sees it: an offset and the tzdata
/// abbreviation (`UTC`, `IST`, `CET`, `+04`) for any instant.
///
/// Named zones are read from TZif files directly, because Foundation's
/// abbreviations differ from Go's (`GMT` for UTC, `GMT+4`), and `MST` in a layout
/// must print what Go prints.
public struct LogTimeZone: Sendable {
    enum Storage: Sendable {
        case fixed(offset: Int, name: String)
        case rules(TZRules)
    }

    let storage: Storage

    /// Go's `time.UTC`: offset 0, named "UTC".
    public static let utc = LogTimeZone(storage: .fixed(offset: 0, name: "UTC"))

    /// Go's `time.FixedZone`. An empty name makes `MST` print `±hhmm`.
    public static func fixed(offsetSeconds: Int, name: String) -> LogTimeZone {
        LogTimeZone(storage: .fixed(offset: offsetSeconds, name: name))
    }

    /// Go's `time.LoadLocation(name)` from a zoneinfo directory: transitions from
    /// the TZif data (64-bit block when the file has one) and the POSIX TZ footer for
    /// instants after the last transition (slim tzdata files rely on the footer for
    /// all recent years). Returns nil if the file is missing or malformed, or if the
    /// name tries to leave the directory, as Go refuses such names too.
    public static func named(_ tzName: String, zoneinfoDirectory: String = "/usr/share/zoneinfo") -> LogTimeZone? {
        if tzName.isEmpty || tzName == "UTC" { return .utc }
        if tzName.hasPrefix("/") || tzName.hasPrefix("\\") || tzName.contains("..") { return nil }
        guard let bytes = readWholeFile(zoneinfoDirectory + "/" + tzName) else { return nil }
        return fromTZif(bytes)
    }

    /// Go's `time.Local` as `initLocal` chooses it from `TZ`: unset reads
    /// `/etc/localtime`; empty or `UTC` is UTC; `:Name` and `Name` load a zoneinfo
    /// entry (an absolute path loads that file); anything that fails to load is UTC.
    /// Lambda sets `TZ=:UTC`.
    public static func goLocal(
        tz: String?,
        zoneinfoDirectories: [String] = ["/usr/share/zoneinfo", "/usr/share/lib/zoneinfo", "/usr/lib/locale/TZ", "/etc/zoneinfo"],
        localtimePath: String = "/etc/localtime"
    ) -> LogTimeZone {
        guard var name = tz else {
            return readWholeFile(localtimePath).flatMap(fromTZif) ?? .utc
        }
        if name.hasPrefix(":") { name.removeFirst() }
        if name.isEmpty || name == "UTC" { return .utc }
        if name.hasPrefix("/") {
            return readWholeFile(name).flatMap(fromTZif) ?? .utc
        }
        for directory in zoneinfoDirectories {
            if let bytes = readWholeFile(directory + "/" + name), let zone = fromTZif(bytes) { return zone }
        }
        return .utc
    }

    /// Parses TZif data (RFC 8536) the way Go's `LoadLocationFromTZData` does.
    public static func fromTZif(_ bytes: [UInt8]) -> LogTimeZone? {
        guard let rules = TZRules(tzif: bytes) else { return nil }
        return LogTimeZone(storage: .rules(rules))
    }

    /// The offset east of UTC and the abbreviation in force at an instant.
    public func offset(atUnixSeconds seconds: Int64) -> (seconds: Int, abbreviation: String) {
        switch storage {
        case .fixed(let offset, let name): return (offset, name)
        case .rules(let rules): return rules.lookup(seconds)
        }
    }
}

// MARK: - TZif

struct TZRules: Sendable {
    struct Zone: Sendable {
        var name: String
        var offset: Int
        var isDST: Bool
    }

    var zones: [Zone]
    /// Transition instants, ascending, with the zone index in force from then on.
    var transitionTimes: [Int64]
    var transitionZones: [Int]
    /// The zone used before the first transition (Go's `lookupFirstZone`).
    var firstZone: Int
    /// The POSIX TZ footer, parsed once.
    var extend: PosixTZ?

    init?(tzif data: [UInt8]) {
        var reader = ByteReader(data)
        guard let header = reader.readHeader() else { return nil }
        var counts = header.counts
        var timeSize = 4
        if header.version >= 2 {
            // Skip the v1 block; the 64-bit block after the second header is exact
            // beyond 2038 and before 1901.
            let v1Length =
                counts.timecnt * 4 + counts.timecnt + counts.typecnt * 6 + counts.charcnt
                + counts.leapcnt * 8 + counts.isstdcnt + counts.isutcnt
            guard reader.skip(v1Length), let second = reader.readHeader() else { return nil }
            counts = second.counts
            timeSize = 8
        }
        var times: [Int64] = []
        times.reserveCapacity(counts.timecnt)
        for _ in 0..<counts.timecnt {
            guard let t = timeSize == 8 ? reader.int64() : reader.int32().map(Int64.init) else { return nil }
            times.append(t)
        }
        var indices: [Int] = []
        for _ in 0..<counts.timecnt {
            guard let i = reader.byte() else { return nil }
            indices.append(Int(i))
        }
        var raw: [(offset: Int, isDST: Bool, abbrIndex: Int)] = []
        for _ in 0..<counts.typecnt {
            guard let off = reader.int32(), let dst = reader.byte(), let idx = reader.byte() else { return nil }
            raw.append((Int(off), dst != 0, Int(idx)))
        }
        guard counts.typecnt > 0, let charSlice = reader.bytes(counts.charcnt) else { return nil }
        let chars = Array(charSlice)
        var zones: [Zone] = []
        for r in raw {
            guard r.abbrIndex <= chars.count else { return nil }
            var end = r.abbrIndex
            while end < chars.count && chars[end] != 0 { end += 1 }
            zones.append(Zone(name: String(decoding: chars[r.abbrIndex..<end], as: UTF8.self), offset: r.offset, isDST: r.isDST))
        }
        guard indices.allSatisfy({ $0 < zones.count }) else { return nil }
        let leapSize = timeSize == 8 ? 12 : 8
        guard reader.skip(counts.leapcnt * leapSize + counts.isstdcnt + counts.isutcnt) else { return nil }

        if header.version >= 2, let footer = reader.footer() {
            extend = PosixTZ(footer)
        } else {
            extend = nil
        }
        self.zones = zones
        // Go adds a transition at the beginning of time when there is none, so the
        // first zone and then the footer apply.
        if times.isEmpty {
            times = [Int64.min]
            indices = [0]
        }
        transitionTimes = times
        transitionZones = indices
        firstZone = TZRules.lookupFirstZone(zones: zones, transitionZones: indices)
    }

    /// Go's `Location.lookupFirstZone`.
    static func lookupFirstZone(zones: [Zone], transitionZones: [Int]) -> Int {
        if !transitionZones.contains(0) { return 0 }
        if let first = transitionZones.first, zones[first].isDST {
            var zi = first - 1
            while zi >= 0 {
                if !zones[zi].isDST { return zi }
                zi -= 1
            }
        }
        if let zi = zones.firstIndex(where: { !$0.isDST }) { return zi }
        return 0
    }

    /// Go's `Location.lookup`: binary search for the last transition at or before
    /// the instant; after the last one the TZ footer decides.
    func lookup(_ sec: Int64) -> (seconds: Int, abbreviation: String) {
        if sec < transitionTimes[0] {
            let zone = zones[firstZone]
            return (zone.offset, zone.name)
        }
        var lo = 0
        var hi = transitionTimes.count
        while hi - lo > 1 {
            let m = (lo + hi) >> 1
            if sec < transitionTimes[m] { hi = m } else { lo = m }
        }
        let zone = zones[transitionZones[lo]]
        if lo == transitionTimes.count - 1, let extend, let hit = extend.lookup(sec) {
            return hit
        }
        return (zone.offset, zone.name)
    }
}

private struct ByteReader {
    struct Counts {
        var isutcnt = 0, isstdcnt = 0, leapcnt = 0, timecnt = 0, typecnt = 0, charcnt = 0
    }

    let data: [UInt8]
    var position = 0

    init(_ data: [UInt8]) { self.data = data }

    mutating func readHeader() -> (version: Int, counts: Counts)? {
        guard let magic = bytes(4), magic.elementsEqual("TZif".utf8), let v = byte(), skip(15) else { return nil }
        var c = Counts()
        guard let a = uint32(), let b = uint32(), let l = uint32(), let t = uint32(), let ty = uint32(), let ch = uint32()
        else { return nil }
        c.isutcnt = Int(a); c.isstdcnt = Int(b); c.leapcnt = Int(l)
        c.timecnt = Int(t); c.typecnt = Int(ty); c.charcnt = Int(ch)
        let version = v == 0 ? 1 : Int(v) - 0x30
        return (version, c)
    }

    mutating func skip(_ n: Int) -> Bool {
        guard n >= 0, data.count - position >= n else { return false }
        position += n
        return true
    }

    mutating func byte() -> UInt8? {
        guard position < data.count else { return nil }
        defer { position += 1 }
        return data[position]
    }

    mutating func bytes(_ n: Int) -> ArraySlice<UInt8>? {
        guard n >= 0, data.count - position >= n else { return nil }
        defer { position += n }
        return data[position..<position + n]
    }

    mutating func uint32() -> UInt32? {
        guard let b = bytes(4) else { return nil }
        return b.reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func int32() -> Int32? { uint32().map { Int32(bitPattern: $0) } }

    mutating func int64() -> Int64? {
        guard let b = bytes(8) else { return nil }
        return Int64(bitPattern: b.reduce(0) { $0 << 8 | UInt64($1) })
    }

    /// The `\n<TZ string>\n` footer of a v2+ file.
    mutating func footer() -> String? {
        guard byte() == UInt8(ascii: "\n") else { return nil }
        let start = position
        while position < data.count && data[position] != UInt8(ascii: "\n") { position += 1 }
        guard position < data.count, position > start else { return nil }
        return String(decoding: data[start..<position], as: UTF8.self)
    }
}

private func readWholeFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16384)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n > 0 {
            result.append(contentsOf: chunk[0..<n])
            // Zone files are a few KiB; anything huge is not one.
            if result.count > 1 << 20 { return nil }
        } else if n == 0 {
            return result
        } else if errno != EINTR {
            return nil
        }
    }
}

// MARK: - POSIX TZ footer (Go's tzset)

struct PosixTZ: Sendable {
    enum RuleKind: Sendable { case julian, dayOfYear, monthWeekDay }
    struct Rule: Sendable {
        var kind: RuleKind
        var day = 0, week = 0, month = 0
        var time = 2 * 3600
    }

    var stdName: String
    var stdOffset: Int
    /// nil when the zone has no daylight saving time.
    var dst: (name: String, offset: Int, start: Rule, end: Rule)?

    /// Parses like Go's `tzset`; nil where Go's `tzset` reports !ok, in which case Go
    /// keeps the last transition's zone.
    init?(_ text: String) {
        var s = Substring(text)
        guard let std = PosixTZ.name(&s), var stdOff = PosixTZ.offset(&s) else { return nil }
        stdOff = -stdOff
        stdName = std
        stdOffset = stdOff
        if s.isEmpty || s.first == "," {
            dst = nil
            return
        }
        guard let dstName = PosixTZ.name(&s) else { return nil }
        var dstOffset: Int
        if s.isEmpty || s.first == "," {
            dstOffset = stdOff + 3600
        } else {
            guard let off = PosixTZ.offset(&s) else { return nil }
            dstOffset = -off
        }
        if s.isEmpty { s = ",M3.2.0,M11.1.0" }
        guard s.first == "," || s.first == ";" else { return nil }
        s.removeFirst()
        guard let start = PosixTZ.rule(&s), s.first == "," else { return nil }
        s.removeFirst()
        guard let end = PosixTZ.rule(&s), s.isEmpty else { return nil }
        dst = (dstName, dstOffset, start, end)
    }

    func lookup(_ sec: Int64) -> (seconds: Int, abbreviation: String)? {
        guard let dst else { return (stdOffset, stdName) }
        let days = floorDiv(sec, 86400)
        let civil = civilFromDays(days)
        let year = civil.year
        let yearStartDays = daysFromCivil(year: year, month: 1, day: 1)
        let ysec = (days - yearStartDays) * 86400 + (sec - days * 86400)
        var startSec = Int64(PosixTZ.ruleTime(year: year, rule: dst.start, offset: stdOffset))
        var endSec = Int64(PosixTZ.ruleTime(year: year, rule: dst.end, offset: dst.offset))
        var stdName = self.stdName, dstName = dst.name
        var stdOffset = self.stdOffset, dstOffset = dst.offset
        // Southern hemisphere: "DST" is the part of the year outside the rule pair.
        if endSec < startSec {
            swap(&startSec, &endSec)
            swap(&stdName, &dstName)
            swap(&stdOffset, &dstOffset)
        }
        if ysec < startSec || ysec >= endSec { return (stdOffset, stdName) }
        return (dstOffset, dstName)
    }

    static func name(_ s: inout Substring) -> String? {
        guard let first = s.first else { return nil }
        if first != "<" {
            var count = 0
            var index = s.startIndex
            while index < s.endIndex {
                let c = s[index]
                if "0123456789,-+".contains(c) {
                    if count < 3 { return nil }
                    let name = String(s[s.startIndex..<index])
                    s = s[index...]
                    return name
                }
                count += 1
                index = s.index(after: index)
            }
            if count < 3 { return nil }
            let name = String(s)
            s = s[s.endIndex...]
            return name
        }
        guard let close = s.firstIndex(of: ">") else { return nil }
        let name = String(s[s.index(after: s.startIndex)..<close])
        s = s[s.index(after: close)...]
        return name
    }

    static func offset(_ s: inout Substring) -> Int? {
        guard let first = s.first else { return nil }
        var negative = false
        if first == "+" { s.removeFirst() } else if first == "-" { s.removeFirst(); negative = true }
        guard let hours = number(&s, min: 0, max: 24 * 7) else { return nil }
        var off = hours * 3600
        if s.first == ":" {
            s.removeFirst()
            guard let mins = number(&s, min: 0, max: 59) else { return nil }
            off += mins * 60
            if s.first == ":" {
                s.removeFirst()
                guard let secs = number(&s, min: 0, max: 59) else { return nil }
                off += secs
            }
        }
        return negative ? -off : off
    }

    static func rule(_ s: inout Substring) -> Rule? {
        guard let first = s.first else { return nil }
        var r: Rule
        if first == "J" {
            s.removeFirst()
            guard let day = number(&s, min: 1, max: 365) else { return nil }
            r = Rule(kind: .julian, day: day)
        } else if first == "M" {
            s.removeFirst()
            guard let mon = number(&s, min: 1, max: 12), s.first == "." else { return nil }
            s.removeFirst()
            guard let week = number(&s, min: 1, max: 5), s.first == "." else { return nil }
            s.removeFirst()
            guard let day = number(&s, min: 0, max: 6) else { return nil }
            r = Rule(kind: .monthWeekDay, day: day, week: week, month: mon)
        } else {
            guard let day = number(&s, min: 0, max: 365) else { return nil }
            r = Rule(kind: .dayOfYear, day: day)
        }
        if s.first == "/" {
            s.removeFirst()
            guard let t = offset(&s) else { return nil }
            r.time = t
        }
        return r
    }

    static func number(_ s: inout Substring, min: Int, max: Int) -> Int? {
        var num = 0
        var digits = 0
        while let c = s.first, let d = c.wholeNumberValue, c.isASCII {
            num = num * 10 + d
            if num > max { return nil }
            digits += 1
            s.removeFirst()
        }
        if digits == 0 || num < min { return nil }
        return num
    }

    /// Go's `tzruleTime`: seconds from the start of the year (UTC) to the rule.
    static func ruleTime(year: Int64, rule r: Rule, offset: Int) -> Int {
        var s: Int
        switch r.kind {
        case .julian:
            s = (r.day - 1) * 86400
            if isLeap(year) && r.day >= 60 { s += 86400 }
        case .dayOfYear:
            s = r.day * 86400
        case .monthWeekDay:
            // Zeller's congruence for the weekday of the first of the month.
            let m1 = (r.month + 9) % 12 + 1
            var yy0 = Int(year)
            if r.month <= 2 { yy0 -= 1 }
            let yy1 = yy0 / 100
            let yy2 = yy0 % 100
            var dow = ((26 * m1 - 2) / 10 + 1 + yy2 + yy2 / 4 + yy1 / 4 - 2 * yy1) % 7
            if dow < 0 { dow += 7 }
            var d = r.day - dow
            if d < 0 { d += 7 }
            var i = 1
            while i < r.week {
                if d + 7 >= daysIn(month: r.month, year: year) { break }
                d += 7
                i += 1
            }
            d += daysBeforeMonth[r.month - 1]
            if isLeap(year) && r.month > 2 { d += 1 }
            s = d * 86400
        }
        return s + r.time - offset
    }
}

// MARK: - Proleptic Gregorian calendar arithmetic (year 0 exists, as in Go)

let daysBeforeMonth = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365]

@inline(__always)
func isLeap(_ year: Int64) -> Bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

func daysIn(month: Int, year: Int64) -> Int {
    if month == 2 && isLeap(year) { return 29 }
    return daysBeforeMonth[month] - daysBeforeMonth[month - 1]
}

@inline(__always)
func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to a civil date.
@inline(__always)
func civilFromDays(_ days: Int64) -> (year: Int64, month: Int, day: Int) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    return (yoe + era * 400 + (m <= 2 ? 1 : 0), Int(m), Int(d))
}

/// Howard Hinnant's `days_from_civil`.
func daysFromCivil(year: Int64, month: Int, day: Int) -> Int64 {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let m = Int64(month)
    let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146_097 + doe - 719_468
}
