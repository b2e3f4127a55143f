import Testing

@testable import RelayCore

/// PYROSCOPE_REMOTE_ADDRESS as the relay reads it: checked on bytes and scalars (not
/// Characters), with the answers Character properties gave.
@Suite struct RemoteEndpointParsingTests {
    @Test(arguments: [
        ("https://example.com/a b", "white space"), ("https://example.com/\ta", "white space"),
        ("https://example.com/\u{2028}", "white space"), ("https://example.com/\u{85}x", "white space"),
        ("https://example.com/?x=1", "query or fragment"), ("https://example.com/#f", "query or fragment"),
        ("https://exa!mple.com", "characters a host name cannot have"), ("https://exa mple.com", "white space"),
        ("ftp://example.com", "scheme"), ("https://", "no host"),
    ])
    func unusableAddressesAreRefusedWithTheReason(address: String, reason: String) {
        #expect(throws: RelayError.self) { try RemoteEndpoint(parsing: address) }
        do {
            _ = try RemoteEndpoint(parsing: address)
        } catch {
            #expect(error.message.contains(reason), "\(address): \(error.message)")
        }
    }

    @Test func hostNamesOfAnyScriptAndTheUsualOnesAreAccepted() throws {
        let unicode = try RemoteEndpoint(parsing: "https://bücher.example:4040/base/")
        #expect(unicode.host == "bücher.example" && unicode.port == 4040 && unicode.basePath == "/base")
        let plain = try RemoteEndpoint(parsing: "http://Pyroscope_1.internal-net.example")
        #expect(plain.host == "pyroscope_1.internal-net.example" && plain.basePath == "")
        #expect(try RemoteEndpoint(parsing: "https://example.com/").basePath == "")
        #expect(try RemoteEndpoint(parsing: "https://example.com/a/./b/../c").basePath == "/a/c")
    }
}
