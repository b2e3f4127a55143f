import Testing

@testable import GoCompatibility
@testable import RelayLogging

#if canImport(Glibc)
    import Glibc
#endif

private func fileExists(_ path: String) -> Bool { access(path, R_OK) == 0 }
private let zoneinfo = "/usr/share/zoneinfo"

/// Sets the process's `TZ` for the C library around `body`: the zone `GoTimeZone.local`
/// shows. The executable never does this (its `TZ` is the one it was started with).
private func withProcessTZ<T>(_ value: String, _ body: () throws -> T) rethrows -> T {
    let previous = getenv("TZ").map { String(cString: $0) }
    setenv("TZ", value, 1)
    tzset()
    defer {
        if let previous { setenv("TZ", previous, 1) } else { unsetenv("TZ") }
        tzset()
    }
    return try body()
}

/// Named zones through the C library, chosen by Go's rules.
@Suite("Named time zones", .serialized)
struct GoTimeZoneTests {
    @Test("UTC and empty names are Go's UTC")
    func utc() {
        #expect(GoTimeZone.goLocal(tz: "UTC") == (.utc, nil))
        #expect(GoTimeZone.goLocal(tz: "") == (.utc, nil))
        #expect(GoTimeZone.goLocal(tz: ":UTC").zone.offset(atUnixSeconds: 0) == (0, "UTC"))
    }

    @Test("missing or escaping names are UTC with a reason")
    func missing() {
        for tz in ["No/Such_Zone", "../etc/passwd", "Not/AZone"] {
            let (zone, problem) = GoTimeZone.goLocal(tz: tz)
            #expect(zone == .utc && problem != nil, "\(tz)")
        }
        #expect(GoTimeZone.goLocal(tz: "Asia/Kolkata", zoneinfoDirectory: "/nonexistent").zone == .utc)
        #expect(GoTimeZone.goLocal(tz: nil, localtimePath: "/nonexistent") == (.utc, nil), "no /etc/localtime: UTC, silently, as Go")
        // A file that is not TZif data is not a zone.
        #expect(GoTimeZone.goLocal(tz: "/etc/hostname").zone == .utc)
    }

    @Test("names that load are the C library's local zone", .enabled(if: fileExists(zoneinfo + "/Asia/Kolkata"), "tzdata is not installed"))
    func loadable() {
        #expect(GoTimeZone.goLocal(tz: ":Asia/Kolkata") == (.local, nil))
        #expect(GoTimeZone.goLocal(tz: "Asia/Kolkata") == (.local, nil))
        #expect(GoTimeZone.goLocal(tz: zoneinfo + "/Asia/Kolkata") == (.local, nil))
    }

    @Test("Asia/Kolkata is IST +05:30", .enabled(if: fileExists(zoneinfo + "/Asia/Kolkata"), "tzdata is not installed"))
    func kolkata() {
        withProcessTZ(":Asia/Kolkata") {
            let zone = GoTimeZone.local
            let u = Times.U
            let (offset, name) = zone.offset(atUnixSeconds: u.seconds)
            #expect(offset == 19800 && name == "IST")
            #expect(u.inZone(offset: offset, name: name).format("2006-01-02T15:04:05 MST Z07:00") == "2006-01-02T20:34:05 IST +05:30")
            // far future: past the last transition, the TZ footer decides
            #expect(zone.offset(atUnixSeconds: 4_102_444_800) == (19800, "IST"))
        }
    }

    @Test("Europe/Berlin switches CET/CEST at the EU dates", .enabled(if: fileExists(zoneinfo + "/Europe/Berlin"), "tzdata is not installed"))
    func berlin() {
        withProcessTZ("Europe/Berlin") {
            let zone = GoTimeZone.local
            func at(_ i: Instant) -> (Int, String) { let r = zone.offset(atUnixSeconds: i.seconds); return (r.seconds, r.abbreviation) }
            #expect(at(Instant(2024, 1, 15, 12, 0, 0, nanos: 0)) == (3600, "CET"))
            #expect(at(Instant(2024, 7, 15, 12, 0, 0, nanos: 0)) == (7200, "CEST"))
            // 2024-03-31 01:00 UTC and 2024-10-27 01:00 UTC are the transitions
            #expect(at(Instant(2024, 3, 31, 0, 59, 59, nanos: 0)) == (3600, "CET"))
            #expect(at(Instant(2024, 3, 31, 1, 0, 0, nanos: 0)) == (7200, "CEST"))
            #expect(at(Instant(2024, 10, 27, 0, 59, 59, nanos: 0)) == (7200, "CEST"))
            #expect(at(Instant(2024, 10, 27, 1, 0, 0, nanos: 0)) == (3600, "CET"))
            // beyond any table: 2100 via the footer rule
            #expect(at(Instant(2100, 7, 1, 0, 0, 0, nanos: 0)) == (7200, "CEST"))
            #expect(at(Instant(2100, 12, 1, 0, 0, 0, nanos: 0)) == (3600, "CET"))
            // before standard time: local mean time
            #expect(at(Instant(1850, 1, 1, 0, 0, 0, nanos: 0)) == (3208, "LMT"))

            let h = Harness(LogConfiguration(timestampLayout: "2006-01-02 15:04:05 MST", timeZone: zone), at: Instant(2024, 7, 15, 12, 0, 0, nanos: 0))
            h.logger.info("m")
            #expect(h.lines == [#"time="2024-07-15 14:00:00 CEST" level=info msg=m"# + "\n"])
        }
    }

    @Test("southern hemisphere DST via the footer (Australia/Sydney)", .enabled(if: fileExists(zoneinfo + "/Australia/Sydney"), "tzdata is not installed"))
    func sydney() {
        withProcessTZ("Australia/Sydney") {
            #expect(GoTimeZone.local.offset(atUnixSeconds: Instant(2100, 1, 15, 0, 0, 0, nanos: 0).seconds) == (39600, "AEDT"))
            #expect(GoTimeZone.local.offset(atUnixSeconds: Instant(2100, 7, 15, 0, 0, 0, nanos: 0).seconds) == (36000, "AEST"))
        }
    }

    @Test("numeric abbreviations such as +04 (Asia/Dubai)", .enabled(if: fileExists(zoneinfo + "/Asia/Dubai"), "tzdata is not installed"))
    func dubai() {
        withProcessTZ("Asia/Dubai") {
            #expect(GoTimeZone.local.offset(atUnixSeconds: Times.U.seconds) == (14400, "+04"))
        }
    }
}
