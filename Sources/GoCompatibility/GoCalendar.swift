// Proleptic Gregorian calendar arithmetic (year 0 exists, as in Go), for Go time
// layouts and HTTP dates.

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

/// The calendar arithmetic other modules need (HTTP dates in `Retry-After`, SigV4 dates).
public enum GoCalendar {
    /// Days since 1970-01-01 of a proleptic Gregorian date.
    public static func daysSinceEpoch(year: Int64, month: Int, day: Int) -> Int64 {
        daysFromCivil(year: year, month: month, day: day)
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01 (SigV4's dates).
    public static func date(daysSinceEpoch days: Int64) -> (year: Int64, month: Int, day: Int) {
        civilFromDays(days)
    }
}
