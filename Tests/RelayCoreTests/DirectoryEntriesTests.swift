import Foundation
import Testing

@testable import RelayMetrics

/// Listing a directory (the spool, the journal's segments, /proc/self/fd and /proc/self/task).
@Suite struct DirectoryEntriesTests {
    @Test func everyNameIsListedWholeAndTheDotsAreNot() throws {
        let directory = NSTemporaryDirectory() + "entries-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Names of every length up to the longest a file system takes, many buffers' worth:
        // each entry is read only as far as its own name goes.
        let names = Set((1...2_000).map { index in String(repeating: "n", count: max(0, index % 255 + 1 - "\(index)".count)) + "\(index)" })
        for name in names { #expect(FileManager.default.createFile(atPath: "\(directory)/\(name)", contents: nil)) }
        #expect(Set(try #require(directoryEntryNames(directory))) == names)
        #expect(try #require(directoryEntryNames(directory)).count == names.count)
    }

    @Test func aDirectoryThatCannotBeOpenedIsNil() {
        #expect(directoryEntryNames("/nonexistent-\(UUID().uuidString)") == nil)
    }
}
