/// Finding a run of elements in a collection, without the standard library's
/// `firstRange(of:)` and `contains(_:)` for strings: those live in `_StringProcessing`,
/// and one call links it and the regex parser into the binary (0.8 MB of code and their
/// conformance records, which every first conformance lookup at start-up scans). The
/// shipped modules use these; `layer/check_binary.py` refuses a binary that links them.
/// Inlinable, so each caller's module specializes them for its collection: unspecialized,
/// every element went through witness tables (0.4 M instructions before the first
/// `/event/next`, callgrind, most of it finding the PEM marker in a CA bundle's first bytes).
extension Collection where Element: Equatable {
    /// The first place `needle` occurs, or nil (also for an empty needle, as the standard
    /// library answers).
    @inlinable
    public func firstOccurrence(of needle: some Collection<Element>) -> Range<Index>? {
        guard let first = needle.first else { return nil }
        var start = startIndex
        while let candidate = self[start...].firstIndex(of: first) {
            var position = candidate
            var matched = true
            for element in needle {
                guard position != endIndex, self[position] == element else {
                    matched = false
                    break
                }
                formIndex(after: &position)
            }
            if matched { return candidate..<position }
            start = index(after: candidate)
        }
        return nil
    }

    /// Whether `needle` occurs anywhere.
    @inlinable
    public func includes(_ needle: some Collection<Element>) -> Bool { firstOccurrence(of: needle) != nil }
}
