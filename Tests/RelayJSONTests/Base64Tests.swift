import RelayJSON
import Testing

@Suite struct Base64Tests {
    /// RFC 4648 section 10.
    @Test(arguments: [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")])
    func rfc4648Vectors(plain: String, encoded: String) {
        #expect(Base64.decode(encoded) == Array(plain.utf8))
        #expect(Base64.encode(Array(plain.utf8)) == encoded)
    }

    @Test func everyByteAndTheWholeAlphabet() {
        let bytes = (0...255).map(UInt8.init)
        let encoded = Base64.encode(bytes)
        #expect(encoded.hasPrefix("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZH"))
        #expect(Base64.decode(encoded) == bytes)
        #expect(Base64.decode("+/+/") == [0xFB, 0xFF, 0xBF])
    }

    @Test(arguments: [
        "Zg", "Zg=", "Zm9", "Z===", "====", "Zg==Zg==", "Zm9v\n", " Zm9v", "Zm 9v", "Zm9v YmFy", "Zm-_", "Zg=a", "=Zg=", "Zm9vYmFy=", "é===",
    ])
    func invalidTextIsRefused(text: String) {
        #expect(Base64.decode(text) == nil)
    }

    @Test func unusedBitsOfTheLastGroupAreIgnoredAsFoundationDoes() {
        #expect(Base64.decode("Zh==") == Array("f".utf8))
    }
}
