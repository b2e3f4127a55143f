import RelayJSON
import RelayTestSupport
import Testing

@Suite struct JSONWriterTests {
    @Test func stringsAreEscapedAsRFC8259Requires() {
        let value: JSONValue = ["q\"b\\": "tab\t nl\n cr\r nul\u{0} us\u{1F} del\u{7F} / é 😀"]
        #expect(value.jsonText == #"{"q\"b\\":"tab\t nl\n cr\r nul\u0000 us\u001f del"# + "\u{7F}" + #" \/ é 😀"}"#)
        #expect(JSONValue.string("\u{08}\u{0C}\u{1}").jsonText == #""\b\f\u0001""#)
    }

    @Test func integersAndNumbersAreWrittenExactly() {
        #expect(JSONValue.int(Int64.max).jsonText == "9223372036854775807" && JSONValue.int(-1).jsonText == "-1")
        #expect(JSONValue.number(JSONNumber(0.5)!).jsonText == "0.5" && JSONValue.number(JSONNumber(text: "1E+2")!).jsonText == "1E+2")
        #expect(JSONValue.array([true, false, .null, [], [:]]).jsonText == "[true,false,null,[],{}]")
    }

    /// The Extensions API request bodies as the client builds them, member order kept.
    @Test func extensionsAPIBodies() {
        let register: JSONValue = ["events": .array(["INVOKE", "SHUTDOWN"].map(JSONValue.string))]
        #expect(register.jsonText == #"{"events":["INVOKE","SHUTDOWN"]}"#)
        let subscription: JSONValue = [
            "schemaVersion": "2022-12-13", "types": ["platform"], "buffering": ["maxItems": 1000, "maxBytes": .int(262_144), "timeoutMs": 25],
            "destination": ["protocol": "HTTP", "URI": "http://sandbox.localdomain:4243"],
        ]
        #expect(
            subscription.jsonText
                == #"{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":25},"destination":{"protocol":"HTTP","URI":"http:\/\/sandbox.localdomain:4243"}}"#
        )
        let report: JSONValue = ["errorMessage": "bad \"setting\"", "errorType": "Extension.ConfigInvalid", "stackTrace": []]
        #expect(report.jsonText == #"{"errorMessage":"bad \"setting\"","errorType":"Extension.ConfigInvalid","stackTrace":[]}"#)
    }

    @Test func writtenTextParsesBack() throws {
        let value: JSONValue = ["a": [1, "two", ["three": .null]], "": "\u{0}\u{1}\"\\\u{10FFFF}", "n": .number(JSONNumber(text: "-1.5e-300")!)]
        #expect(try JSONValue.parse(value.serialized()) == value)
    }

    /// parse(write(v)) == v for random values: every type, every control character and
    /// non-ASCII scalar, nesting up to the limit's neighbourhood.
    @Test func roundTripOfRandomValues() throws {
        var random = SplitMix64(seed: 0x5EED_1234)
        for _ in 0..<2_000 {
            let value = randomValue(&random, depth: 0)
            let text = value.serialized()
            #expect(try JSONValue.parse(text) == value, "\(value.jsonText)")
            // Compact output: no byte of white space outside strings.
            #expect(text.first != 0x20 && text.last != 0x20)
        }
    }

    private func randomValue(_ random: inout SplitMix64, depth: Int) -> JSONValue {
        switch random.next(below: depth > 5 ? 5 : 7) {
        case 0: return .null
        case 1: return .bool(random.next(below: 2) == 0)
        case 2: return .int(Int64(bitPattern: random.next()) >> Int64(random.next(below: 64)))
        case 3: return .number(JSONNumber(Double(bitPattern: random.next())) ?? JSONNumber(0.25)!)
        case 4: return .string(randomString(&random))
        case 5: return .array((0..<random.next(below: 5)).map { _ in randomValue(&random, depth: depth + 1) })
        default: return .object((0..<random.next(below: 5)).map { _ in (key: randomString(&random), value: randomValue(&random, depth: depth + 1)) })
        }
    }

    private func randomString(_ random: inout SplitMix64) -> String {
        var scalars = String.UnicodeScalarView()
        for _ in 0..<random.next(below: 12) {
            let pick: UInt32 =
                switch random.next(below: 4) {
                case 0: UInt32(random.next(below: 0x20))  // control characters
                case 1: [0x22, 0x5C, 0x2F, 0x7F][random.next(below: 4)]
                case 2: UInt32(0x20 + random.next(below: 0x5F))
                default: UInt32(random.next(below: 0x10FFFF))
                }
            scalars.append(Unicode.Scalar(pick) ?? "\u{FFFD}")
        }
        return String(scalars)
    }
}
