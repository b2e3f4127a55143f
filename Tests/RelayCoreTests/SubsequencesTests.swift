import GoCompatibility
import Testing

/// GoCompatibility's `firstOccurrence(of:)` and `includes(_:)` answer as the standard
/// library's `firstRange(of:)` and `contains(_:)` (which the shipped modules must not call:
/// they link the regex library), on fixed cases and on random bytes.
@Suite struct SubsequencesTests {
    @Test(arguments: [
        ("http://host", "://"), ("no scheme", "://"), ("", "x"), ("aab", "ab"), ("abab", "bab"), ("a\r\n\r\nb", "\r\n\r\n"),
        ("zones/../etc", ".."), ("..", ".."), ("x.", ".."), ("ééé", "é"),
    ])
    func fixedCases(haystack: String, needle: String) {
        #expect(haystack.firstOccurrence(of: needle) == haystack.firstRange(of: needle))
        #expect(haystack.includes(needle) == haystack.contains(needle))
        #expect(Array(haystack.utf8).firstOccurrence(of: Array(needle.utf8)) == Array(haystack.utf8).firstRange(of: Array(needle.utf8)))
    }

    /// The standard library is not consistent here (a String answers `0..<0`, an Array nil);
    /// the relay never looks for nothing, and the answer is nil.
    @Test func anEmptyNeedleIsNotFound() {
        #expect("abc".firstOccurrence(of: "") == nil && [UInt8]().firstOccurrence(of: []) == nil && !"abc".includes(""))
    }

    @Test func randomBytesAgreeWithTheStandardLibrary() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            let haystack = (0..<Int.random(in: 0...24, using: &generator)).map { _ in UInt8.random(in: 0...2, using: &generator) }
            let needle = (0..<Int.random(in: 1...4, using: &generator)).map { _ in UInt8.random(in: 0...2, using: &generator) }
            #expect(haystack.firstOccurrence(of: needle) == haystack.firstRange(of: needle), "\(haystack) \(needle)")
            let tail = haystack.dropFirst(3)
            #expect(tail.firstOccurrence(of: needle) == tail.firstRange(of: needle))
        }
    }
}
