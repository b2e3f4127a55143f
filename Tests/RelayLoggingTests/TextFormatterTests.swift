import Logging
import Testing

@testable import RelayLogging

@Suite("Text formatter (§4)")
struct TextFormatterTests {
    let text = LogConfiguration(format: .text, level: .trace)

    @Test("line 1")
    func line1() {
        let h = Harness(text, metadata: ["svc": "pyroscope-lambda-ext-main"])
        h.logger.info("Starting relay")
        #expect(h.lines == [#"time="2006-01-02T15:04:05Z" level=info msg="Starting relay" svc=pyroscope-lambda-ext-main"# + "\n"])
    }

    @Test("line 2: user fields sorted after the fixed keys")
    func line2() {
        let h = Harness(text, metadata: ["svc": "pyroscope-lambda-ext-main", "comp": "controller"])
        h.logger.error("Failed to read a request for relay. Error: unexpected EOF", metadata: ["path": "/ingest"])
        #expect(
            h.lines == [
                #"time="2006-01-02T15:04:05Z" level=error msg="Failed to read a request for relay. Error: unexpected EOF" comp=controller path=/ingest svc=pyroscope-lambda-ext-main"#
                    + "\n"
            ])
    }

    @Test("line 3: a trailing newline in the message is kept, quoted")
    func line3() {
        let h = Harness(text)
        h.logger.info("Received signal: 'terminated'. Exiting\n")
        #expect(h.lines == [#"time="2006-01-02T15:04:05Z" level=info msg="Received signal: 'terminated'. Exiting\n""# + "\n"])
    }

    static let line4 =
        #"time="2006-01-02T15:04:05Z" level=error a= b="x y" c="q\"b\\s" d=42 e=1.5 f="<nil>" g=true h="ünï" i="a=b" j="[1 2]" z=ok/path@v1^+_.-"# + "\n"

    @Test("line 4: empty message, every value kind (formatter, for Go's nil)")
    func line4() {
        let fields: [(key: String, value: LogFieldValue)] = [
            ("z", .string("ok/path@v1^+_.-")), ("j", .array([.int(1), .int(2)])), ("i", .string("a=b")),
            ("h", .string("ünï")), ("g", .bool(true)), ("f", .null), ("e", .double(1.5)), ("d", .int(42)),
            ("c", .string(#"q"b\s"#)), ("b", .string("x y")), ("a", .string("")),
        ]
        #expect(format(text, entryAtU(.error, "", fields)) == Self.line4)
    }

    @Test("line 4 through swift-log (no nil there: f is left out)")
    func line4ViaLogger() {
        let h = Harness(text)
        h.logger.error(
            "",
            metadata: [
                "a": "", "b": "x y", "c": #"q"b\s"#, "d": .stringConvertible(42), "e": .stringConvertible(1.5),
                "g": .stringConvertible(true), "h": "ünï", "i": "a=b", "j": [.stringConvertible(1), .stringConvertible(2)],
                "z": "ok/path@v1^+_.-",
            ])
        #expect(h.lines == [Self.line4.replacingOccurrences(#" f="<nil>""#, with: "")])
    }

    @Test("line 5: reserved-name clashes")
    func line5() {
        let h = Harness(text)
        h.logger.debug(
            "m",
            metadata: [
                "time": .stringConvertible(1), "level": .stringConvertible(2), "msg": .stringConvertible(3),
                "logrus_error": .stringConvertible(4), "func": .stringConvertible(5), "file": .stringConvertible(6),
            ])
        #expect(
            h.lines == [#"time="2006-01-02T15:04:05Z" level=debug msg=m fields.level=2 fields.logrus_error=4 fields.msg=3 fields.time=1 file=6 func=5"# + "\n"])
    }

    @Test("line 6: logrus_error after msg")
    func line6() {
        let h = Harness(text)
        h.logger.trace("x", metadata: ["fn": .stringConvertible(Double.nan), "q": .stringConvertible(1)])
        #expect(h.lines == [#"time="2006-01-02T15:04:05Z" level=trace msg=x logrus_error="can not add field \"fn\"" q=1"# + "\n"])
    }

    @Test("line 7: all-digit layout is bare, renamed keys")
    func line7() {
        let config = LogConfiguration(
            level: .debug, timestampLayout: "20060102150405",
            fieldNames: LogFieldNames(time: "@timestamp", level: "severity", message: "message"))
        let h = Harness(config, metadata: ["svc": "pyroscope-lambda-ext-main", "comp": "orchestrator"])
        h.logger.debug("Starting queue")
        #expect(h.lines == ["@timestamp=20060102150405 severity=debug message=\"Starting queue\" comp=orchestrator svc=pyroscope-lambda-ext-main\n"])
    }

    @Test("line 8: moving onto an existing fields.time overwrites it")
    func line8() {
        let h = Harness(LogConfiguration(disableTimestamp: true))
        h.logger.info("hi", metadata: ["time": "t", "fields.time": "old"])
        #expect(h.lines == ["level=info msg=hi fields.time=t\n"])
    }

    @Test("line 9: renamed names clash, default names do not")
    func line9() {
        let config = LogConfiguration(disableTimestamp: true, fieldNames: LogFieldNames(time: "@ts", level: "lvl", message: "message"))
        let h = Harness(config)
        h.logger.info(
            "m",
            metadata: [
                "time": .stringConvertible(1), "@ts": .stringConvertible(2), "lvl": .stringConvertible(3),
                "message": .stringConvertible(4), "level": .stringConvertible(5),
            ])
        #expect(h.lines == ["lvl=info message=m fields.@ts=2 fields.lvl=3 fields.message=4 level=5 time=1\n"])
    }

    @Test("the HTML example in text: no HTML escaping, \\u2028, \\x01, \\xff")
    func html() {
        let raw: [UInt8] = Array("<a href=\"x\">&</a> \u{2028} \u{01} \t é ".utf8) + [0xFF]
        var out: [UInt8] = []
        raw.withUnsafeBufferPointer { appendTextValue($0, to: &out) }
        #expect(String(decoding: out, as: UTF8.self) == #""<a href=\"x\">&</a> \u2028 \x01 \t é \xff""#)
        let h = Harness(text)
        h.logger.info("<a href=\"x\">&</a> \u{2028} \u{01} \t é")
        #expect(h.lines == [#"time="2006-01-02T15:04:05Z" level=info msg="<a href=\"x\">&</a> \u2028 \x01 \t é""# + "\n"])
    }

    @Test("an empty message has no msg key at all")
    func emptyMessage() {
        let h = Harness(text)
        h.logger.warning("")
        #expect(h.lines == ["time=\"2006-01-02T15:04:05Z\" level=warning\n"])
    }

    @Test("FieldMap collision prints the first match twice")
    func reservedCollision() {
        let config = LogConfiguration(fieldNames: LogFieldNames(message: "level"))
        #expect(format(config, entryAtU(.info, "m")) == "time=\"2006-01-02T15:04:05Z\" level=info level=info\n")
    }

    @Test("keys are written raw, never quoted")
    func rawKeys() {
        #expect(
            format(LogConfiguration(disableTimestamp: true), entryAtU(.info, "", [("a b=\"c", .string("v"))]))
                == "level=info a b=\"c=v\n")
    }

    @Test("%v forms: floats, nested arrays, maps, big and negative numbers")
    func goV() {
        let fields: [(key: String, value: LogFieldValue)] = [
            ("a", .double(1e21)), ("b", .double(0.000001)), ("c", .double(1234567)), ("d", .double(123456)),
            ("e", .double(0.0001)), ("f", .double(-2.5e-10)), ("g", .array([.string("x y"), .array([.null])])),
            ("h", .object([(key: "k", value: .int(1)), (key: "b", value: .string("v"))])), ("i", .float(0.1)),
            ("j", .double(100)), ("k", .array([])),
        ]
        #expect(
            format(LogConfiguration(disableTimestamp: true), entryAtU(.info, "", fields))
                == #"level=info a=1e+21 b=1e-06 c=1.234567e+06 d=123456 e=0.0001 f=-2.5e-10 g="[x y [<nil>]]" h="map[b:v k:1]" i=0.1 j=100 k="[]""# + "\n")
    }
}

@Suite("Text quoting (§4.3)")
struct QuotingTests {
    func quoted(_ s: String) -> String {
        var out: [UInt8] = []
        appendTextValue(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    func quotedBytes(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        bytes.withUnsafeBufferPointer { appendTextValue($0, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    @Test("bare: letters, digits and - . _ / @ ^ +; the empty string too")
    func bare() {
        #expect(quoted("AZaz09-._/@^+") == "AZaz09-._/@^+")
        #expect(quoted("") == "")
        #expect(quoted("20060102150405") == "20060102150405")
    }

    @Test(
        "anything else is %q",
        arguments: [
            ("x y", #""x y""#),
            ("a=b", #""a=b""#),
            ("2006-01-02T15:04:05Z", #""2006-01-02T15:04:05Z""#),
            ("q\"b\\s", #""q\"b\\s""#),
            ("\u{07}\u{08}\u{0C}\n\r\t\u{0B}", #""\a\b\f\n\r\t\v""#),
            ("\u{00}\u{1B}\u{7F}", #""\x00\x1b\x7f""#),
            ("é😀\u{FFFD}'`", "\"é😀\u{FFFD}'`\""),
            ("\u{A0}\u{200B}\u{2028}\u{E000}\u{10FFFF}\u{AD}", #""\u00a0\u200b\u2028\ue000\U0010ffff\u00ad""#),
            ("ü", "\"ü\""),
            ("e\u{301}", "\"e\u{301}\""),  // a combining mark (Mn) is printable
            ("\u{E0001}", #""\U000e0001""#),  // a format character (Cf) is not
        ])
    func quoting(input: String, expected: String) {
        #expect(quoted(input) == expected)
    }

    @Test("invalid UTF-8 bytes become \\xHH, one per byte")
    func invalidBytes() {
        #expect(quotedBytes([0x61, 0xFF]) == #""a\xff""#)
        #expect(quotedBytes([0xE2, 0x82, 0x41]) == #""\xe2\x82A""#)
        #expect(quotedBytes([0xED, 0xA0, 0x80]) == #""\xed\xa0\x80""#)
    }

    @Test("goQuote quotes logrus_error keys like Go %q")
    func goQuoteKeys() {
        #expect(goQuote("fn") == #""fn""#)
        #expect(goQuote("a\"b\n") == #""a\"b\n""#)
    }
}
