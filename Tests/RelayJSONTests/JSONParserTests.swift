import RelayJSON
import Testing

@Suite struct JSONParserTests {
    /// RFC 8259 section 13, the two examples.
    @Test func rfc8259Examples() throws {
        let image = try JSONValue.parse(
            """
            {
              "Image": {
                "Width":  800,
                "Height": 600,
                "Title":  "View from 15th Floor",
                "Thumbnail": {
                  "Url":    "http://www.example.com/image/481989943",
                  "Height": 125,
                  "Width":  100
                },
                "Animated" : false,
                "IDs": [116, 943, 234, 38793]
              }
            }
            """)
        #expect(image["Image"]?["Width"]?.int64 == 800)
        #expect(image["Image"]?["Title"]?.string == "View from 15th Floor")
        #expect(image["Image"]?["Thumbnail"]?["Url"]?.string == "http://www.example.com/image/481989943")
        #expect(image["Image"]?["Animated"]?.bool == false)
        #expect(image["Image"]?["IDs"]?.array?.compactMap(\.int64) == [116, 943, 234, 38793])

        let places = try JSONValue.parse(
            """
            [
              {
                 "precision": "zip",
                 "Latitude":  37.7668,
                 "Longitude": -122.3959,
                 "Address":   "",
                 "City":      "SAN FRANCISCO",
                 "State":     "CA",
                 "Zip":       "94107",
                 "Country":   "US"
              },
              {
                 "precision": "zip",
                 "Latitude":  37.371991,
                 "Longitude": -122.026020,
                 "Address":   "",
                 "City":      "SUNNYVALE",
                 "State":     "CA",
                 "Zip":       "94085",
                 "Country":   "US"
              }
            ]
            """)
        #expect(places.array?.count == 2)
        #expect(places[1]?["Longitude"]?.double == -122.026020)
        #expect(places[1]?["Longitude"]?.number?.text == "-122.026020")
        #expect(places[0]?["Address"]?.string == "")
        // The RFC's scalar texts.
        #expect(try JSONValue.parse(#""Hello world!""#) == .string("Hello world!"))
        #expect(try JSONValue.parse("42").int64 == 42)
        #expect(try JSONValue.parse("true") == .bool(true))
    }

    @Test(
        arguments: [
            ("[]", JSONValue.array([])), ("{}", .object([])), (" \t\r\n[ ] \n", .array([])), ("null", .null), ("false", .bool(false)),
            ("-0", .number(JSONNumber(text: "-0")!)),
            ("[1e5,1E+2,-1.5e-3]", [.number(JSONNumber(text: "1e5")!), .number(JSONNumber(text: "1E+2")!), .number(JSONNumber(text: "-1.5e-3")!)]),
            (#"{"a":[{"b":null}]}"#, ["a": [["b": .null]]]), (#"["\"\\\/\b\f\n\r\t"]"#, ["\"\\/\u{08}\u{0C}\n\r\t"]),
            (#""\u00e9\u20AC\ud83d\ude00""#, "é€😀"), ("\"é€😀\"", "é€😀"), (#""\u0000""#, "\u{0}"), ("[1e400]", [.number(JSONNumber(text: "1e400")!)]),
            ("\u{FEFF}{}", .object([])), (#"{"a":1,"a":2}"#, .object([(key: "a", value: 1), (key: "a", value: 2)])),
        ] as [(String, JSONValue)])
    func mustAccept(text: String, expected: JSONValue) throws {
        #expect(try JSONValue.parse(text) == expected)
    }

    @Test(
        arguments: [
            ("", JSONError.Code.unexpectedEnd, 0), ("   ", .unexpectedEnd, 3), ("[1,]", .unexpectedByte, 3), (#"{"a":1,}"#, .unexpectedByte, 7),
            ("[01]", .invalidNumber, 2), ("-", .invalidNumber, 1), ("1.", .invalidNumber, 2), (".5", .unexpectedByte, 0), ("+1", .unexpectedByte, 0),
            ("1e", .invalidNumber, 2), ("1e+", .invalidNumber, 3), ("-01", .invalidNumber, 2), ("0x10", .trailingData, 1), ("NaN", .unexpectedByte, 0),
            ("Infinity", .unexpectedByte, 0), ("[1 2]", .unexpectedByte, 3), ("{} {}", .trailingData, 3), ("[] x", .trailingData, 3),
            ("tru", .unexpectedEnd, 3), ("nul l", .unexpectedByte, 3), ("[\"a\tb\"]", .controlCharacter, 3), ("\"a\nb\"", .controlCharacter, 2),
            (#""\x""#, .invalidEscape, 1), (#""\u12G4""#, .invalidEscape, 5), (#""\ud800""#, .invalidUnicode, 1), (#""\udc00""#, .invalidUnicode, 1),
            (#""\ud800\u0041""#, .invalidUnicode, 1), (#""\ud800x""#, .invalidUnicode, 1), ("\"abc", .unexpectedEnd, 4), ("{\"a\" 1}", .unexpectedByte, 5),
            ("{1:2}", .unexpectedByte, 1), ("['a']", .unexpectedByte, 1), ("[1,\n", .unexpectedEnd, 4), ("\u{0C}[]", .unexpectedByte, 0),
            ("[\u{A0}]", .unexpectedByte, 1), ("// c\n[]", .unexpectedByte, 0), ("{\"a\":1", .unexpectedEnd, 6),
        ] as [(String, JSONError.Code, Int)])
    func mustReject(text: String, code: JSONError.Code, offset: Int) {
        do {
            let value = try JSONValue.parse(text)
            Issue.record("accepted \(text) as \(value)")
        } catch {
            #expect(error.code == code, "\(text): \(error)")
            #expect(error.offset == offset, "\(text): \(error)")
        }
    }

    /// Invalid UTF-8 inside a string, each at the byte named: a lone continuation byte,
    /// overlong forms, an encoded surrogate, beyond U+10FFFF, a truncated sequence.
    @Test(
        arguments: [
            ([0x22, 0x80, 0x22], 1), ([0x22, 0xC0, 0xAF, 0x22], 1), ([0x22, 0xE0, 0x80, 0xAF, 0x22], 2), ([0x22, 0xED, 0xA0, 0x80, 0x22], 2),
            ([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], 2), ([0x22, 0xF5, 0x80, 0x80, 0x80, 0x22], 1), ([0x22, 0xE2, 0x82, 0x22], 3),
            ([0x22, 0xFF, 0x22], 1),
        ] as [([UInt8], Int)])
    func invalidUTF8IsRefusedWithItsOffset(bytes: [UInt8], offset: Int) {
        do {
            let value = try JSONValue.parse(bytes)
            Issue.record("accepted \(bytes) as \(value)")
        } catch {
            #expect(error.code == .invalidUnicode && error.offset == offset, "\(error)")
        }
    }

    @Test func nestingIsLimited() throws {
        let deepest = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(try JSONValue.parse(deepest).array?.count == 1)
        let tooDeep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: JSONError.self) { _ = try JSONValue.parse(tooDeep) }
        // Far beyond the limit fails on the limit, not on the stack.
        let hostile = String(repeating: #"{"a":["#, count: 100_000)
        do {
            _ = try JSONValue.parse(hostile)
            Issue.record("accepted 100000 levels")
        } catch {
            #expect(error.code == .tooDeep && error.offset == 192)
        }
        #expect(try JSONValue.parse("[[[]]]", maxDepth: 3) == [[[]]])
        #expect(throws: JSONError.self) { _ = try JSONValue.parse("[[[]]]", maxDepth: 2) }
    }

    @Test func numbersKeepTheirText() throws {
        let event = try JSONValue.parse(#"{"deadlineMs":1733512345678,"big":9223372036854775807,"over":9223372036854775808,"neg":-9223372036854775808}"#)
        #expect(event["deadlineMs"]?.int64 == 1_733_512_345_678)
        #expect(event["big"]?.int64 == Int64.max && event["neg"]?.int64 == Int64.min)
        #expect(event["over"]?.int64 == nil && event["over"]?.double == 9_223_372_036_854_775_808)
        // Digits a Double would round: the text keeps them.
        #expect(try JSONValue.parse("9007199254740993").int64 == 9_007_199_254_740_993)
        #expect(try JSONValue.parse("1e3").int64 == 1000 && JSONValue.parse("5.0").int64 == 5 && JSONValue.parse("1.5").int64 == nil)
        #expect(try JSONValue.parse("1.5").double == 1.5 && JSONValue.parse("-0.0").double == 0)
        #expect(try JSONValue.parse("1e400").double == nil && JSONValue.parse("-1e400").double == nil && JSONValue.parse("1e-400").double == 0)
        #expect(try JSONValue.parse("123456789012345678901234567890").int64 == nil)
        #expect(JSONNumber(text: "01") == nil && JSONNumber(text: "1 ") == nil && JSONNumber(text: "-1.25e+7")?.double == -12_500_000)
        #expect(JSONNumber(Double.infinity) == nil && JSONNumber(0.1)?.double == 0.1)
    }

    @Test func accessorsAndMemberRules() throws {
        let value = try JSONValue.parse(#"{"s":"x","n":3,"z":null,"a":[true],"o":{"k":"v"},"d":1,"d":2}"#)
        #expect(value["s"]?.string == "x" && value["n"]?.string == nil && value["missing"] == nil && value["z"]?.isNull == true)
        #expect(value["a"]?[0]?.bool == true && value["a"]?[1] == nil && value["s"]?["k"] == nil)
        #expect(value["o"]?.dictionary == ["k": "v"] && value["d"]?.int64 == 1 && value.dictionary?["d"]?.int64 == 1)
        #expect(try value.required("s", \.string) == "x" && value.optional("z", \.string) == nil && value.optional("missing", \.int64) == nil)
        #expect(throws: JSONError(.missingKey, "no value for the key 'z'")) { try value.required("z", \.string) }
        #expect(throws: JSONError(.missingKey, "no value for the key 'missing'")) { try value.required("missing", \.string) }
        #expect(throws: JSONError(.typeMismatch, "the value of 'n' is a number, not of the type expected")) { try value.optional("n", \.string) }
        #expect(throws: JSONError(.typeMismatch, "expected an object with the key 'k', found an array")) { try value["a"]!.optional("k", \.string) }
    }

    @Test func errorsSayWhereAndWhat() {
        #expect(throws: JSONError(.unexpectedByte, "expected ',' or '}' in an object, found 'x'", offset: 7)) {
            try JSONValue.parse(#"{"a":1 x}"#)
        }
        #expect(JSONError(.trailingData, "unexpected 'x' after the value", offset: 3).description == "invalid JSON at byte 3: unexpected 'x' after the value")
        #expect(JSONError(.missingKey, "no value for the key 'k'").description == "invalid JSON: no value for the key 'k'")
    }
}
