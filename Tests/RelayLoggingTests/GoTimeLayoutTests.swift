import Testing

@testable import GoCompatibility
@testable import RelayLogging

struct TokenRow: Sendable, CustomTestStringConvertible {
    var layout: String
    var u: String, i: String, b: String, c: String
    init(_ layout: String, _ u: String, _ i: String? = nil, b: String, _ c: String) {
        self.layout = layout
        self.u = u
        self.i = i ?? u
        self.b = b
        self.c = c
    }
    var testDescription: String { "`\(layout)`" }
}

/// §5.3, one row per token ("same" in the I column means the U value).
let tokenTable: [TokenRow] = [
    TokenRow("2006", "2006", b: "2023", "2023"),
    TokenRow("06", "06", b: "23", "23"),
    TokenRow("01", "01", b: "03", "11"),
    TokenRow("1", "1", b: "3", "11"),
    TokenRow("Jan", "Jan", b: "Mar", "Nov"),
    TokenRow("January", "January", b: "March", "November"),
    TokenRow("Mon", "Mon", b: "Thu", "Sat"),
    TokenRow("Monday", "Monday", b: "Thursday", "Saturday"),
    TokenRow("02", "02", b: "09", "25"),
    TokenRow("2", "2", b: "9", "25"),
    TokenRow("_2", " 2", b: " 9", "25"),
    TokenRow("002", "002", b: "068", "329"),
    TokenRow("__2", "  2", b: " 68", "329"),
    TokenRow("15", "15", b: "00", "12"),
    TokenRow("03", "03", b: "12", "12"),
    TokenRow("3", "3", b: "12", "12"),
    TokenRow("04", "04", b: "07", "30"),
    TokenRow("4", "4", b: "7", "30"),
    TokenRow("05", "05", b: "08", "09"),
    TokenRow("5", "5", b: "8", "9"),
    TokenRow("PM", "PM", b: "AM", "PM"),
    TokenRow("pm", "pm", b: "am", "pm"),
    TokenRow("MST", "UTC", "IST", b: "UTC", "-0930"),
    TokenRow("Z07:00", "Z", "+05:30", b: "Z", "-09:30"),
    TokenRow("-07:00", "+00:00", "+05:30", b: "+00:00", "-09:30"),
    TokenRow("Z0700", "Z", "+0530", b: "Z", "-0930"),
    TokenRow("-0700", "+0000", "+0530", b: "+0000", "-0930"),
    TokenRow("Z07", "Z", "+05", b: "Z", "-09"),
    TokenRow("-07", "+00", "+05", b: "+00", "-09"),
    TokenRow("Z07:00:00", "Z", "+05:30:00", b: "Z", "-09:30:00"),
    TokenRow("-07:00:00", "+00:00:00", "+05:30:00", b: "+00:00:00", "-09:30:00"),
    TokenRow("Z070000", "Z", "+053000", b: "Z", "-093000"),
    TokenRow("-070000", "+000000", "+053000", b: "+000000", "-093000"),
    TokenRow(".0", ".1", b: ".0", ".1"),
    TokenRow(".000", ".123", b: ".000", ".100"),
    TokenRow(".000000", ".123456", b: ".000500", ".100000"),
    TokenRow(".000000000", ".123456789", b: ".000500000", ".100000000"),
    TokenRow(".0000000000", ".123456789", b: ".000500000", ".100000000"),
    TokenRow(".9", ".1", b: "", ".1"),
    TokenRow(".999", ".123", b: "", ".1"),
    TokenRow(".999999", ".123456", b: ".0005", ".1"),
    TokenRow(".999999999", ".123456789", b: ".0005", ".1"),
    TokenRow(",000", ",123", b: ",000", ",100"),
    TokenRow(",999", ",123", b: "", ",1"),
]

struct StandardRow: Sendable, CustomTestStringConvertible {
    var name: String, layout: String, utc: String, istWall: String, istInstant: String
    var testDescription: String { name }
}

/// §5.4, all three columns.
let standardLayouts: [StandardRow] = [
    StandardRow(
        name: "Layout", layout: "01/02 03:04:05PM '06 -0700", utc: "01/02 03:04:05PM '06 +0000", istWall: "01/02 03:04:05PM '06 +0530",
        istInstant: "01/02 08:34:05PM '06 +0530"),
    StandardRow(
        name: "ANSIC", layout: "Mon Jan _2 15:04:05 2006", utc: "Mon Jan  2 15:04:05 2006", istWall: "Mon Jan  2 15:04:05 2006",
        istInstant: "Mon Jan  2 20:34:05 2006"),
    StandardRow(
        name: "UnixDate", layout: "Mon Jan _2 15:04:05 MST 2006", utc: "Mon Jan  2 15:04:05 UTC 2006", istWall: "Mon Jan  2 15:04:05 IST 2006",
        istInstant: "Mon Jan  2 20:34:05 IST 2006"),
    StandardRow(
        name: "RubyDate", layout: "Mon Jan 02 15:04:05 -0700 2006", utc: "Mon Jan 02 15:04:05 +0000 2006", istWall: "Mon Jan 02 15:04:05 +0530 2006",
        istInstant: "Mon Jan 02 20:34:05 +0530 2006"),
    StandardRow(name: "RFC822", layout: "02 Jan 06 15:04 MST", utc: "02 Jan 06 15:04 UTC", istWall: "02 Jan 06 15:04 IST", istInstant: "02 Jan 06 20:34 IST"),
    StandardRow(
        name: "RFC822Z", layout: "02 Jan 06 15:04 -0700", utc: "02 Jan 06 15:04 +0000", istWall: "02 Jan 06 15:04 +0530", istInstant: "02 Jan 06 20:34 +0530"),
    StandardRow(
        name: "RFC850", layout: "Monday, 02-Jan-06 15:04:05 MST", utc: "Monday, 02-Jan-06 15:04:05 UTC", istWall: "Monday, 02-Jan-06 15:04:05 IST",
        istInstant: "Monday, 02-Jan-06 20:34:05 IST"),
    StandardRow(
        name: "RFC1123", layout: "Mon, 02 Jan 2006 15:04:05 MST", utc: "Mon, 02 Jan 2006 15:04:05 UTC", istWall: "Mon, 02 Jan 2006 15:04:05 IST",
        istInstant: "Mon, 02 Jan 2006 20:34:05 IST"),
    StandardRow(
        name: "RFC1123Z", layout: "Mon, 02 Jan 2006 15:04:05 -0700", utc: "Mon, 02 Jan 2006 15:04:05 +0000", istWall: "Mon, 02 Jan 2006 15:04:05 +0530",
        istInstant: "Mon, 02 Jan 2006 20:34:05 +0530"),
    StandardRow(
        name: "RFC3339", layout: "2006-01-02T15:04:05Z07:00", utc: "2006-01-02T15:04:05Z", istWall: "2006-01-02T15:04:05+05:30",
        istInstant: "2006-01-02T20:34:05+05:30"),
    StandardRow(
        name: "RFC3339Nano", layout: "2006-01-02T15:04:05.999999999Z07:00", utc: "2006-01-02T15:04:05.123456789Z",
        istWall: "2006-01-02T15:04:05.123456789+05:30", istInstant: "2006-01-02T20:34:05.123456789+05:30"),
    StandardRow(name: "Kitchen", layout: "3:04PM", utc: "3:04PM", istWall: "3:04PM", istInstant: "8:34PM"),
    StandardRow(name: "Stamp", layout: "Jan _2 15:04:05", utc: "Jan  2 15:04:05", istWall: "Jan  2 15:04:05", istInstant: "Jan  2 20:34:05"),
    StandardRow(
        name: "StampMilli", layout: "Jan _2 15:04:05.000", utc: "Jan  2 15:04:05.123", istWall: "Jan  2 15:04:05.123", istInstant: "Jan  2 20:34:05.123"),
    StandardRow(
        name: "StampMicro", layout: "Jan _2 15:04:05.000000", utc: "Jan  2 15:04:05.123456", istWall: "Jan  2 15:04:05.123456",
        istInstant: "Jan  2 20:34:05.123456"),
    StandardRow(
        name: "StampNano", layout: "Jan _2 15:04:05.000000000", utc: "Jan  2 15:04:05.123456789", istWall: "Jan  2 15:04:05.123456789",
        istInstant: "Jan  2 20:34:05.123456789"),
    StandardRow(name: "DateTime", layout: "2006-01-02 15:04:05", utc: "2006-01-02 15:04:05", istWall: "2006-01-02 15:04:05", istInstant: "2006-01-02 20:34:05"),
    StandardRow(name: "DateOnly", layout: "2006-01-02", utc: "2006-01-02", istWall: "2006-01-02", istInstant: "2006-01-02"),
    StandardRow(name: "TimeOnly", layout: "15:04:05", utc: "15:04:05", istWall: "15:04:05", istInstant: "20:34:05"),
]

@Suite("Go time layouts (§5)")
struct GoTimeLayoutTests {
    @Test("§5.3 token table, times U I B C", arguments: tokenTable)
    func token(row: TokenRow) {
        #expect(Times.U.format(row.layout) == row.u)
        #expect(Times.I.format(row.layout) == row.i)
        #expect(Times.B.format(row.layout) == row.b)
        #expect(Times.C.format(row.layout) == row.c)
    }

    @Test("§5.4 standard layouts: UTC, IST same wall clock, U instant in IST", arguments: standardLayouts)
    func standard(row: StandardRow) {
        #expect(Times.U.format(row.layout) == row.utc)
        #expect(Times.I.format(row.layout) == row.istWall)
        #expect(Times.U.inZone(offset: 19800, name: "IST").format(row.layout) == row.istInstant)
    }

    @Test("an unnamed +05:30 zone prints MST as +0530")
    func unnamedZone() {
        let t = Times.I.inZone(offset: 19800, name: "")
        #expect(t.format("Mon Jan _2 15:04:05 MST 2006") == "Mon Jan  2 15:04:05 +0530 2006")
    }

    @Test(
        "§5.3 literal-copy vectors (U, then C)",
        arguments: [
            ("v1", "v1", "v11"),
            ("Janet", "Janet", "Janet"),
            ("Mondays", "Mondays", "Saturdays"),
            ("_2006", "_2006", "_2023"),
            ("7/8/9/0", "7/8/9/0", "7/8/9/0"),
            ("15h04m", "15h04m", "12h30m"),
            ("3.14", "3.14", "12.1130"),
            ("2006-01-02T15:04:05.999999999Z", "2006-01-02T15:04:05.123456789Z", "2023-11-25T12:30:09.1Z"),
        ])
    func literal(layout: String, u: String, c: String) {
        #expect(Times.U.format(layout) == u)
        #expect(Times.C.format(layout) == c)
    }

    @Test("tie-breaks and other literals")
    func tieBreaks() {
        #expect(Times.U.format("2006_2") == "2006 2")
        #expect(Times.U.format("12") == "12")
        #expect(Times.C.format("12") == "1125")
        #expect(Times.U.format(".09") == ".09")
        #expect(Times.U.format("PMT") == "PMT")
        #expect(Times.B.format("PMT") == "AMT")
        #expect(Times.U.format("Monthly") == "Monthly")
        #expect(Times.U.format("T Z -08 Z08 é") == "T Z -08 Z08 é")
        #expect(Times.U.format("") == "")
        #expect(Times.U.format(".99x") == ".12x")
        #expect(Times.U.format(".000000000000000") == ".123456789")
    }

    @Test("years below 1000, above 9999 and below zero")
    func years() {
        let y33 = Instant(33, 1, 2, 3, 4, 5, nanos: 0)
        #expect(y33.format(GoTimeLayout.rfc3339) == "0033-01-02T03:04:05Z")
        let y12345 = Instant(12345, 1, 2, 3, 4, 5, nanos: 0)
        #expect(y12345.format(GoTimeLayout.rfc3339) == "12345-01-02T03:04:05Z")
        #expect(y12345.format("06") == "45")
        let yMinus1 = Instant(-1, 1, 2, 3, 4, 5, nanos: 0)
        #expect(yMinus1.format(GoTimeLayout.rfc3339) == "-0001-01-02T03:04:05Z")
        #expect(yMinus1.format("06") == "01")
    }

    @Test("LMT −00:17:30 and sub-minute offsets")
    func oddOffsets() {
        let lmt = Times.U.inZone(offset: -1050, name: "LMT")
        #expect(lmt.format("-07:00") == "-00:17")
        #expect(lmt.format("Z070000") == "-001730")
        #expect(lmt.format("MST") == "LMT")
        let tiny = Times.U.inZone(offset: -1, name: "")
        #expect(tiny.format("-070000") == "+0000-01")
    }

    @Test("day of year in a leap year, weekdays before 1970")
    func calendar() {
        let dec31 = Instant(2024, 12, 31, 0, 0, 0, nanos: 0)
        #expect(dec31.format("002 __2 Monday") == "366 366 Tuesday")
        let old = Instant(1969, 12, 31, 23, 59, 59, nanos: 0)
        #expect(old.format("Mon 2006-01-02 15:04:05") == "Wed 1969-12-31 23:59:59")
    }

    @Test("the layout is tokenised once, into literal runs and tokens")
    func tokenised() {
        let layout = GoTimeLayout(GoTimeLayout.rfc3339)
        #expect(layout.tokens.count == 12)  // 6 tokens, 5 literal separators, the zone
        #expect(layout.tokens.first == .longYear)
    }
}
