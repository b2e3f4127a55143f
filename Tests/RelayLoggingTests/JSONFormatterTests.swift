import Logging
import Testing

@testable import RelayLogging

struct Boom: Error, CustomStringConvertible {
    var description: String { "boom <x> & \"y\"" }
}

@Suite("JSON formatter (§3.4)")
struct JSONFormatterTests {
    let json = LogConfiguration(format: .json, level: .trace)

    @Test("line 1: plain info with a field")
    func line1() {
        let h = Harness(json, metadata: ["svc": "pyroscope-lambda-ext-main"])
        h.logger.info("Starting relay")
        #expect(h.lines == [#"{"level":"info","msg":"Starting relay","svc":"pyroscope-lambda-ext-main","time":"2006-01-02T15:04:05Z"}"# + "\n"])
    }

    @Test("line 2: WithError, HTML escaping of < > & and quotes")
    func line2() {
        let expected = #"{"error":"boom \u003cx\u003e \u0026 \"y\"","level":"error","msg":"Failed to relay request: eof","time":"2006-01-02T15:04:05Z"}"# + "\n"
        let viaError = Harness(json)
        viaError.logger.error("Failed to relay request: eof", error: Boom())
        #expect(viaError.lines == [expected])
        let viaMetadata = Harness(json)
        viaMetadata.logger.error("Failed to relay request: eof", metadata: ["error": "boom <x> & \"y\""])
        #expect(viaMetadata.lines == [expected])
    }

    @Test("line 3: every reserved name clashes and moves to fields.*")
    func line3() {
        let h = Harness(json)
        h.logger.debug(
            "m",
            metadata: [
                "time": .stringConvertible(1), "level": .stringConvertible(2), "msg": .stringConvertible(3),
                "logrus_error": .stringConvertible(4), "func": .stringConvertible(5), "file": .stringConvertible(6),
            ])
        #expect(
            h.lines == [
                #"{"fields.level":2,"fields.logrus_error":4,"fields.msg":3,"fields.time":1,"file":6,"func":5,"level":"debug","msg":"m","time":"2006-01-02T15:04:05Z"}"#
                    + "\n"
            ])
    }

    @Test("line 4: an unencodable field is dropped and reported in logrus_error")
    func line4() {
        let h = Harness(json)
        h.logger.trace("x", metadata: ["fn": .stringConvertible(Double.nan), "q": .stringConvertible(1)])
        #expect(h.lines == [#"{"level":"trace","logrus_error":"can not add field \"fn\"","msg":"x","q":1,"time":"2006-01-02T15:04:05Z"}"# + "\n"])
    }

    @Test("line 5: HTML, U+2028, control bytes, tab, é and an invalid byte")
    func line5() {
        // The message bytes of the Go program, including 0xFF, which no Swift String
        // can hold: the escaper is checked on the raw bytes, and the line around it
        // through the handler with the valid part of the message.
        let expectedLine =
            #"{"level":"info","msg":"\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e \u2028 \u0001 \t é \ufffd","time":"2006-01-02T15:04:05Z"}"# + "\n"
        let rawMessage: [UInt8] = Array("<a href=\"x\">&</a> \u{2028} \u{01} \t é ".utf8) + [0xFF]
        var escaped: [UInt8] = []
        rawMessage.withUnsafeBufferPointer { appendJSONString($0, to: &escaped) }
        let line = #"{"level":"info","msg":"# + String(decoding: escaped, as: UTF8.self) + #","time":"2006-01-02T15:04:05Z"}"# + "\n"
        #expect(line == expectedLine)

        let h = Harness(json)
        h.logger.info("<a href=\"x\">&</a> \u{2028} \u{01} \t é ")
        #expect(h.lines == [expectedLine.replacingOccurrences(#" \ufffd""#, with: #" ""#)])
    }

    @Test("line 6: renamed keys and a millisecond layout")
    func line6() {
        let config = LogConfiguration(
            format: .json, level: .debug, timestampLayout: "2006-01-02 15:04:05.000",
            fieldNames: LogFieldNames(time: "@timestamp", level: "severity", message: "message"))
        let h = Harness(config, metadata: ["svc": "pyroscope-lambda-ext-main", "comp": "orchestrator"])
        h.logger.debug("Starting queue")
        #expect(
            h.lines == [
                #"{"@timestamp":"2006-01-02 15:04:05.123","comp":"orchestrator","message":"Starting queue","severity":"debug","svc":"pyroscope-lambda-ext-main"}"#
                    + "\n"
            ])
    }

    @Test("DisableTimestamp still moves a user field named time")
    func disableTimestamp() {
        let config = LogConfiguration(format: .json, disableTimestamp: true)
        let h = Harness(config)
        h.logger.info("hi", metadata: ["time": "t"])
        #expect(h.lines == [#"{"fields.time":"t","level":"info","msg":"hi"}"# + "\n"])
    }

    @Test("an empty message is still written in JSON")
    func emptyMessage() {
        let h = Harness(json)
        h.logger.error("")
        #expect(h.lines == [#"{"level":"error","msg":"","time":"2006-01-02T15:04:05Z"}"# + "\n"])
    }

    @Test("msg and level mapped to one name: only the level survives")
    func reservedCollision() {
        let config = LogConfiguration(format: .json, fieldNames: LogFieldNames(message: "level"))
        #expect(format(config, entryAtU(.info, "m")) == #"{"level":"info","time":"2006-01-02T15:04:05Z"}"# + "\n")
    }

    @Test("keys sort by UTF-8 bytes, reserved and user keys mixed")
    func keyOrder() {
        let fields: [(key: String, value: LogFieldValue)] = ["é", "a", "_x", "Z", "B", "9", "10"].map { ($0, .int(1)) }
        #expect(
            format(json, entryAtU(.info, "m", fields))
                == #"{"10":1,"9":1,"B":1,"Z":1,"_x":1,"a":1,"level":"info","msg":"m","time":"2006-01-02T15:04:05Z","é":1}"# + "\n")
    }

    @Test("field order given to the formatter does not matter")
    func orderIndependent() {
        let fields: [(key: String, value: LogFieldValue)] = [("b", .string("2")), ("a", .string("1")), ("c", .null)]
        let a = format(json, entryAtU(.info, "m", fields))
        let b = format(json, entryAtU(.info, "m", fields.reversed()))
        #expect(a == b)
        #expect(a == #"{"a":"1","b":"2","c":null,"level":"info","msg":"m","time":"2006-01-02T15:04:05Z"}"# + "\n")
    }

    @Test("string escaping: short escapes incl. \\b \\f (Go ≥ 1.22), \\u00xx, DEL raw, U+2029")
    func escaping() {
        var out: [UInt8] = []
        appendJSONString("\u{08}\u{0C}\n\r\t\u{00}\u{1F}\u{7F}\"\\\u{2029}😀", to: &out)
        #expect(String(decoding: out, as: UTF8.self) == #""\b\f\n\r\t\u0000\u001f"# + "\u{7F}" + #"\"\\\u2029😀""#)
    }

    @Test("invalid UTF-8: one \\ufffd per invalid byte, as Go's decoder")
    func invalidUTF8() {
        func esc(_ bytes: [UInt8]) -> String {
            var out: [UInt8] = []
            bytes.withUnsafeBufferPointer { appendJSONString($0, to: &out) }
            return String(decoding: out, as: UTF8.self)
        }
        #expect(esc([0x61, 0xFF, 0x62]) == #""a\ufffdb""#)
        #expect(esc([0xE2, 0x82]) == #""\ufffd\ufffd""#)  // truncated sequence
        #expect(esc([0xED, 0xA0, 0x80]) == #""\ufffd\ufffd\ufffd""#)  // surrogate
        #expect(esc([0xC0, 0xAF]) == #""\ufffd\ufffd""#)  // overlong
        #expect(esc([0xEF, 0xBF, 0xBD]) == "\"\u{FFFD}\"")  // a real U+FFFD stays raw
    }

    @Test("numbers, bools, arrays and maps as encoding/json writes them")
    func values() {
        let fields: [(key: String, value: LogFieldValue)] = [
            ("a", .int(42)), ("b", .double(1.5)), ("c", .bool(true)), ("d", .array([.int(1), .int(2)])),
            ("e", .double(1e21)), ("f", .double(1e-7)), ("g", .double(1e20)), ("h", .double(0.000001)),
            ("i", .double(-0.0)), ("j", .float(0.1)), ("k", .uint(UInt64.max)), ("l", .int(-7)),
            ("m", .object([(key: "z", value: .string("<")), (key: "y", value: .null)])), ("n", .double(1234567)),
            ("o", .double(123456789e-30)),
        ]
        #expect(
            format(json, entryAtU(.info, "", fields))
                == #"{"a":42,"b":1.5,"c":true,"d":[1,2],"e":1e+21,"f":1e-7,"g":100000000000000000000,"h":0.000001,"i":-0,"j":0.1,"k":18446744073709551615,"l":-7,"level":"info","m":{"y":null,"z":"\u003c"},"msg":"","n":1234567,"o":1.23456789e-22,"time":"2006-01-02T15:04:05Z"}"#
                + "\n")
    }

    @Test("metadata kinds map to JSON types")
    func metadataKinds() {
        let h = Harness(json)
        h.logger.info(
            "m",
            metadata: [
                "int": .stringConvertible(42), "u8": .stringConvertible(UInt8(7)), "dbl": .stringConvertible(1.5),
                "flt": .stringConvertible(Float(0.1)), "yes": .stringConvertible(true),
                "other": .stringConvertible(Logger.Level.info), "arr": [.stringConvertible(1), "x"],
                "dict": ["k": "v", "a": .stringConvertible(2)],
            ])
        #expect(
            h.lines == [
                #"{"arr":[1,"x"],"dbl":1.5,"dict":{"a":2,"k":"v"},"flt":0.1,"int":42,"level":"info","msg":"m","other":"info","time":"2006-01-02T15:04:05Z","u8":7,"yes":true}"#
                    + "\n"
            ])
    }

    @Test("NaN and ±Inf anywhere in a value: dropped, keys reported in byte order")
    func unencodable() {
        let h = Harness(json)
        h.logger.info(
            "m",
            metadata: [
                "z\"q": .stringConvertible(Double.infinity), "a": [.stringConvertible(-Float.infinity)], "ok": "1",
            ])
        #expect(
            h.lines == [
                #"{"level":"info","logrus_error":"can not add field \"a\", can not add field \"z\\\"q\"","msg":"m","ok":"1","time":"2006-01-02T15:04:05Z"}"#
                    + "\n"
            ])
    }

    @Test("a timestamp layout with characters JSON escapes")
    func escapedTimestamp() {
        let config = LogConfiguration(format: .json, timestampLayout: "<2006> \"é\"")
        #expect(format(config, entryAtU(.info, "m")) == #"{"level":"info","msg":"m","time":"\u003c2006\u003e \"é\""}"# + "\n")
    }
}

extension String {
    /// Foundation-free replace for the tests.
    func replacingOccurrences(_ target: String, with replacement: String) -> String {
        var result = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: target) {
            result += rest[..<r.lowerBound]
            result += replacement
            rest = rest[r.upperBound...]
        }
        return result + rest
    }
}
