#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The zone of log timestamps, as Go's `time.Location` shows it: an offset and the tzdata
/// abbreviation (`UTC`, `IST`, `CET`, `+04`) for any instant.
///
/// Named zones are the C library's: `localtime_r` reads the zone file that `TZ` names
/// (or /etc/localtime) with its transitions and footer rule. What is Go's is only the
/// choice of zone (`goLocal`), since Go and the C library disagree on what `TZ` values
/// mean when they are not zone names. In Lambda `TZ` is `:UTC`: the fixed UTC zone.
public struct GoTimeZone: Sendable, Equatable {
    enum Storage: Sendable, Equatable {
        case fixed(offset: Int, name: String)
        /// The C library's local time: the zone of the process's `TZ`.
        case local
    }

    let storage: Storage

    /// Go's `time.UTC`: offset 0, named "UTC".
    public static let utc = GoTimeZone(storage: .fixed(offset: 0, name: "UTC"))

    /// Go's `time.FixedZone`. An empty name makes `MST` print `±hhmm`.
    public static func fixed(offsetSeconds: Int, name: String) -> GoTimeZone {
        GoTimeZone(storage: .fixed(offset: offsetSeconds, name: name))
    }

    /// The process's local zone through `localtime_r`. Only meaningful when the process
    /// `TZ` is the one `goLocal` was given (the executable passes its own environment).
    public static let local = GoTimeZone(storage: .local)

    /// The offset east of UTC and the abbreviation in force at an instant.
    public func offset(atUnixSeconds seconds: Int64) -> (seconds: Int, abbreviation: String) {
        switch storage {
        case .fixed(let offset, let name):
            return (offset, name)
        case .local:
            var time = time_t(seconds)
            var parts = tm()
            guard localtime_r(&time, &parts) != nil else { return (0, "UTC") }
            return (Int(parts.tm_gmtoff), parts.tm_zone.map { String(cString: $0) } ?? "")
        }
    }

    /// Go's `time.Local` as `initLocal` chooses it from `TZ`: unset reads /etc/localtime;
    /// empty or `UTC` is UTC; `:Name` and `Name` load that zoneinfo entry, an absolute path
    /// that file; anything that does not load is UTC, with the reason as `problem`.
    public static func goLocal(
        tz: String?, zoneinfoDirectory: String = "/usr/share/zoneinfo", localtimePath: String = "/etc/localtime"
    ) -> (zone: GoTimeZone, problem: String?) {
        guard var name = tz else {
            return isZoneFile(localtimePath) ? (.local, nil) : (.utc, nil)
        }
        if name.hasPrefix(":") { name.removeFirst() }
        if name.isEmpty || name == "UTC" { return (.utc, nil) }
        let path = name.hasPrefix("/") ? name : zoneinfoDirectory + "/" + name
        guard !name.includes(".."), isZoneFile(path) else { return (.utc, "no such zone in \(zoneinfoDirectory)") }
        return (.local, nil)
    }

    /// A readable TZif file (RFC 8536 magic), as both Go and the C library require.
    static func isZoneFile(_ path: String) -> Bool {
        guard let file = fopen(path, "rb") else { return false }
        defer { fclose(file) }
        var magic = [UInt8](repeating: 0, count: 4)
        return fread(&magic, 1, 4, file) == 4 && magic == Array("TZif".utf8)
    }
}
