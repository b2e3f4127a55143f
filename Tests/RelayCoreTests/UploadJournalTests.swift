import Foundation
import Logging
import NIOCore
import Testing

@testable import RelayCore

@Suite struct UploadJournalTests {
    static let logger = Logger(label: "journal-test", factory: { _ in SwiftLogNoOpLogHandler() })

    static func upload(_ text: String) -> Upload {
        Upload(method: .POST, target: "/ingest?name=app", headers: ["Content-Type": "binary/octet-stream", "X-A": "1"], body: ByteBuffer(string: text))
    }

    static func segments(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix("journal-") }.sorted()
    }

    @Test func entriesWithoutAnEndBecomeSpoolRecordsWithTheirSequence() throws {
        try withSpoolDirectory { dir in
            do {
                let journal = try UploadJournal(directory: dir, logger: Self.logger)
                let a = try #require(journal.record(Self.upload("a"), sequence: 7, receivedAtUnixMs: 1000))
                _ = try #require(journal.record(Self.upload("b"), sequence: 8, receivedAtUnixMs: 2000))
                journal.finished(a)
            }  // the process "dies": no end for b
            let files = try SpoolFiles(directory: dir, sync: false)
            #expect(UploadJournal.recover(into: files, logger: Self.logger) == 1)
            #expect(Self.segments(dir).isEmpty, "recovered segments are deleted")
            let spool = try Spool(directory: dir, maxBytes: 1 << 20, logger: Self.logger)
            #expect(spool.recovered == [8])
            let entry = try #require(takeRecord(spool))
            #expect(entry.sequence == 8)
            let headers = [("Content-Type", "binary/octet-stream"), ("X-A", "1")]
            #expect(entry.record == SpoolRecord(method: "POST", target: "/ingest?name=app", headers: headers, body: Array("b".utf8), receivedAtUnixMs: 2000))
        }
    }

    @Test func aFrameCutByAKillLosesOnlyItself() throws {
        try withSpoolDirectory { dir in
            var second: UploadJournal.Entry?
            do {
                let journal = try UploadJournal(directory: dir, logger: Self.logger)
                _ = journal.record(Self.upload("whole"), sequence: 1, receivedAtUnixMs: 1)
                second = journal.record(Self.upload("torn"), sequence: 2, receivedAtUnixMs: 1)
            }
            // The kill landed in the middle of copying the second frame: its tail is unwritten.
            let path = dir + "/" + Self.segments(dir)[0]
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            let cut = try #require(second).offset + UploadJournal.headerSize + 20
            for index in cut..<(cut + 40) { bytes[index] = 0 }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let parsed = UploadJournal.parse(bytes)
            #expect(parsed.torn && Array(parsed.entries.keys) == [1])
            #expect(UploadJournal.recover(into: try SpoolFiles(directory: dir, sync: false), logger: Self.logger) == 1)
        }
    }

    @Test func segmentsRollOverAndAreDeletedOnceEverythingInThemEnded() throws {
        try withSpoolDirectory { dir in
            let journal = try UploadJournal(directory: dir, segmentBytes: 300, logger: Self.logger)
            var entries: [UploadJournal.Entry] = []
            for index in 0..<10 { entries.append(try #require(journal.record(Self.upload("upload-\(index)"), sequence: UInt64(index), receivedAtUnixMs: 0))) }
            #expect(Self.segments(dir).count > 2, "small segments roll over")
            for entry in entries { journal.finished(entry) }
            #expect(Self.segments(dir).count == 1, "only the open segment stays")
            #expect(UploadJournal.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + Self.segments(dir)[0])))).entries.isEmpty)
        }
    }

    @Test func thePipelineJournalsWhatWaitsInMemoryAndEndsItWithTheUpload() async throws {
        let dir = NSTemporaryDirectory() + "journal-pipeline-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let pipeline = DeliveryPipeline(configuration: .init(spoolDirectory: dir), logger: Self.logger)
            for index in 0..<3 { #expect(await pipeline.admit(Self.upload("m\(index)")) == .queued) }
            let delivered = try #require(await pipeline.next())
            await pipeline.complete(delivered, .delivered)
        }  // killed with two uploads in memory
        let pipeline = DeliveryPipeline(configuration: .init(spoolDirectory: dir), logger: Self.logger)
        #expect(pipeline.counters.snapshot.replayed == 2)
        var bodies: [String] = []
        for _ in 0..<2 {
            let delivery = try #require(await pipeline.next())
            bodies.append(String(buffer: delivery.upload.body))
            await pipeline.complete(delivery, .delivered)
        }
        #expect(bodies == ["m1", "m2"])
    }
}
