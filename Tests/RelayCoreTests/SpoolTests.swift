import Foundation
import Logging
import Testing

@testable import RelayCore

@Suite("Spool")
struct SpoolTests {
    // MARK: Round trip and format

    @Test func roundTripKeepsRepeatedHeadersBinaryAndEmptyBodies() throws {
        try withSpoolDirectory { dir in
            let spool = try Spool(directory: dir, maxBytes: 1 << 20, logger: spoolTestLogger().logger)
            let binary = SpoolRecord(
                method: "POST",
                target: "/ingest?name=app%7Benv%3Dprod%7D&from=1&until=2",
                headers: [
                    (name: "Content-Type", value: "multipart/form-data; boundary=x"),
                    (name: "X-Scope-OrgID", value: "tenant-a"),
                    (name: "X-Scope-OrgID", value: "tenant-b"),
                    (name: "Authorization", value: "Basic dTpw"),
                    (name: "Authorization", value: ""),
                    (name: "X-Ünïcode", value: "välue ✓"),
                ],
                body: (0...255).map { UInt8($0) } + (0...255).reversed().map { UInt8($0) },
                receivedAtUnixMs: 1_700_000_000_123)
            let empty = SpoolRecord(method: "GET", target: "/", headers: [], body: [], receivedAtUnixMs: -1)

            try spool.append(binary, sequence: 1)
            try spool.append(empty, sequence: 2)
            #expect(spoolFileNames(dir) == ["00000000000000000001.rec", "00000000000000000002.rec"])

            let first = try #require(takeRecord(spool))
            #expect(first.sequence == 1)
            #expect(first.record == binary)
            #expect(first.record.headers.map(\.name) == binary.headers.map(\.name))
            let second = try #require(takeRecord(spool))
            #expect(second.sequence == 2)
            #expect(second.record == empty)
            #expect(takeRecord(spool) == nil)
        }
    }

    @Test func recordEqualityComparesHeadersInOrder() {
        let a = SpoolRecord(method: "POST", target: "/", headers: [("A", "1"), ("B", "2")], body: [1], receivedAtUnixMs: 0)
        var b = a
        #expect(a == b)
        b.headers = [("B", "2"), ("A", "1")]
        #expect(a != b)
        b.headers = [("A", "1"), ("B", "2"), ("B", "2")]
        #expect(a != b)
    }

    @Test func crc32IsZlibsIEEEChecksum() {
        #expect(SpoolRecordCodec.checksum(Array("123456789".utf8)[...]) == 0xCBF4_3926)
        #expect(SpoolRecordCodec.checksum([][...]) == 0)
        var generator = SystemRandomNumberGenerator()
        for length in [1, 7, 8, 9, 15, 16, 17, 255, 1000, 4099] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(SpoolRecordCodec.checksum(bytes[...]) == bitwiseCRC32(bytes), "length \(length)")
        }
    }

    /// Spools written before this version (with its hand-written CRC) still read.
    @Test func decodesARecordOfFormatVersionOne() throws {
        var bytes: [UInt8] = Array("PYSP".utf8) + [1]
        func integer<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        func field(_ text: String) {
            integer(UInt32(text.utf8.count))
            bytes += Array(text.utf8)
        }
        integer(Int64(1_700_000_000_000))
        integer(Int64(3))  // attempts, ignored
        field("POST")
        field("/ingest?name=app")
        integer(UInt32(1))
        field("Content-Type")
        field("binary/octet-stream")
        field("body")
        integer(bitwiseCRC32(bytes))
        let record = try SpoolRecordCodec.decode(bytes).get()
        #expect(
            record
                == SpoolRecord(
                    method: "POST", target: "/ingest?name=app", headers: [("Content-Type", "binary/octet-stream")], body: Array("body".utf8),
                    receivedAtUnixMs: 1_700_000_000_000))
    }

    // MARK: Order, check-out, check-in, remove

    @Test func replaysOldestFirstAcrossAHundredAppendsWrittenOutOfOrder() throws {
        try withSpoolDirectory { dir in
            let spool = try Spool(directory: dir, maxBytes: 1 << 24, logger: spoolTestLogger().logger)
            // Concurrent writers finish in any order; the oldest sequence still goes first.
            for i in (0..<100).shuffled() { try spool.append(sampleRecord(i), sequence: UInt64(i + 1)) }
            #expect(spool.usage.items == 100)
            for i in 0..<100 {
                let entry = try #require(takeRecord(spool))
                #expect(entry.sequence == UInt64(i + 1))
                #expect(entry.record == sampleRecord(i))
                spool.remove(entry.sequence)
            }
            #expect(takeRecord(spool) == nil)
            #expect(spool.usage.items == 0)
        }
    }

    @Test func concurrentCallersCheckOutDistinctEntries() async throws {
        try await withSpoolDirectoryAsync { dir in
            let spool = try Spool(directory: dir, maxBytes: 1 << 24, logger: spoolTestLogger().logger)
            for i in 0..<200 { try spool.append(sampleRecord(i, bodySize: 256), sequence: UInt64(i + 1)) }

            let perTask = await withTaskGroup(of: [UInt64].self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var mine: [UInt64] = []
                        while let entry = takeRecord(spool) {
                            #expect(entry.record.target == "/ingest?i=\(entry.sequence - 1)")
                            mine.append(entry.sequence)
                        }
                        return mine
                    }
                }
                var all: [[UInt64]] = []
                for await ids in group { all.append(ids) }
                return all
            }
            let flat = perTask.flatMap { $0 }
            #expect(flat.count == 200)
            #expect(Set(flat) == Set(1...200))
            for ids in perTask { #expect(ids == ids.sorted(), "each caller sees increasing sequences") }
            // Everything is checked out but still on disk.
            #expect(spool.usage.items == 200)
            #expect(takeRecord(spool) == nil)
        }
    }

    @Test func removeDeletesTheFile() throws {
        try withSpoolDirectory { dir in
            let spool = try Spool(directory: dir, maxBytes: 1 << 20, logger: spoolTestLogger().logger)
            try spool.append(sampleRecord(0), sequence: 1)
            try spool.append(sampleRecord(1), sequence: 2)
            #expect(spoolFileNames(dir).count == 2)

            let entry = try #require(takeRecord(spool))
            #expect(entry.sequence == 1)
            spool.remove(entry.sequence)
            #expect(spoolFileNames(dir) == ["00000000000000000002.rec"])
            // A not-checked-out entry can be removed too, and is then never returned.
            spool.remove(2)
            #expect(spoolFileNames(dir).isEmpty)
            #expect(takeRecord(spool) == nil)
            spool.remove(2)  // unknown by now: no-op
            #expect(spool.usage == (items: 0, bytes: 0))
        }
    }

    // MARK: Capacity

    @Test func fullCountsDiskBlocksAndAccountsBackToZero() throws {
        try withSpoolDirectory { dir in
            // One record's size on disk, measured by a spool that is gone before the next opens.
            func measure() throws -> Int {
                let spool = try Spool(directory: dir, maxBytes: 1 << 20, logger: spoolTestLogger().logger)
                try spool.append(sampleRecord(0, bodySize: 1000), sequence: 1)
                let recordSize = fileSize(dir + "/00000000000000000001.rec")
                #expect(recordSize > 1000, "sizes include the encoding overhead")
                let onDisk = spool.usage.bytes
                #expect(
                    onDisk == spool.files.diskBytes(forSize: recordSize) && onDisk % 512 == 0 && onDisk >= recordSize,
                    "the limit counts whole blocks: \(onDisk) for a \(recordSize)-byte file")
                spool.remove(1)
                return onDisk
            }
            let onDisk = try measure()

            let spool = try Spool(directory: dir, maxBytes: 3 * onDisk, logger: spoolTestLogger().logger)
            for i in 1...3 { try spool.append(sampleRecord(i, bodySize: 1000), sequence: UInt64(i)) }
            #expect(spool.usage == (items: 3, bytes: 3 * onDisk))
            do throws(SpoolError) {
                try spool.append(sampleRecord(4, bodySize: 1000), sequence: 4)
                Issue.record("append past maxBytes did not throw")
            } catch {
                #expect(error.code == .full)
                #expect(!error.message.isEmpty)
            }
            #expect(spoolFileNames(dir).count == 3, "a refused append leaves no file")
            #expect(spool.usage == (items: 3, bytes: 3 * onDisk))

            // Removing one makes room for exactly one more.
            spool.remove(1)
            try spool.append(sampleRecord(5, bodySize: 1000), sequence: 5)
            #expect(throws: SpoolError.self) { try spool.append(sampleRecord(6, bodySize: 1000), sequence: 6) }

            // A record bigger than the whole spool never fits, even when empty.
            for sequence: UInt64 in [2, 3, 5] { spool.remove(sequence) }
            #expect(spool.usage == (items: 0, bytes: 0))
            #expect(spoolFileNames(dir).isEmpty)
            #expect(throws: SpoolError.self) { try spool.append(sampleRecord(7, bodySize: 3 * onDisk), sequence: 7) }
            #expect(spool.usage == (items: 0, bytes: 0))
        }
    }

    // MARK: Restart and crash leftovers

    @Test func newInstanceReplaysEarlierRecordsInOrderAndReportsTheHighestSequence() throws {
        try withSpoolDirectory { dir in
            do {
                let first = try Spool(directory: dir, maxBytes: 1 << 24, logger: spoolTestLogger().logger)
                for i in 0..<50 { try first.append(sampleRecord(i), sequence: UInt64(i + 1)) }
                // One is checked out when the instance goes away: it must come back too.
                #expect(try #require(takeRecord(first)).sequence == 1)
            }
            let capture = spoolTestLogger()
            let second = try Spool(directory: dir, maxBytes: 1 << 24, logger: capture.logger)
            #expect(second.usage.items == 50)
            #expect(second.recovered == Array(1...50))
            #expect(second.highestRecoveredSequence == 50)
            try second.append(sampleRecord(50), sequence: 51)
            for i in 0..<50 {
                let entry = try #require(takeRecord(second))
                #expect(entry.sequence == UInt64(i + 1))
                #expect(entry.record == sampleRecord(i))
                second.remove(entry.sequence)
            }
            #expect(try #require(takeRecord(second)).sequence == 51)
            #expect(capture.lines(atLeast: .warning).isEmpty)
        }
    }

    @Test func crashLeftoversAndDamagedRecordsAreSkippedWithAWarning() throws {
        try withSpoolDirectory { dir in
            do {
                let writer = try Spool(directory: dir, maxBytes: 1 << 24, logger: spoolTestLogger().logger)
                for i in 0..<8 { try writer.append(sampleRecord(i, bodySize: 3000), sequence: UInt64(i + 1)) }
            }
            func path(_ n: Int) -> String { dir + "/" + String(format: "%020d.rec", n) }
            // A temp file from a crash mid-write, and a stray one.
            let tempLeftover = path(9) + ".tmp"
            try Data(try Data(contentsOf: URL(fileURLWithPath: path(1))).prefix(100)).write(to: URL(fileURLWithPath: tempLeftover))
            try Data([1, 2, 3]).write(to: URL(fileURLWithPath: dir + "/other.tmp"))
            // Record 2 cut in the middle.
            let whole2 = try Data(contentsOf: URL(fileURLWithPath: path(2)))
            try whole2.prefix(whole2.count / 2).write(to: URL(fileURLWithPath: path(2)))
            // Record 4 with one byte flipped in the body.
            var bytes4 = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(4))))
            bytes4[bytes4.count / 2] ^= 0x01
            try Data(bytes4).write(to: URL(fileURLWithPath: path(4)))
            // Record 6 replaced by garbage.
            try Data((0..<700).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }).write(to: URL(fileURLWithPath: path(6)))
            // Record 7 with an unknown format version (checksum still over the old bytes).
            var bytes7 = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(7))))
            bytes7[4] = 99
            try Data(bytes7).write(to: URL(fileURLWithPath: path(7)))
            // A tiny file with a record name, and an unrelated file that must be left alone.
            try Data([0x50, 0x59]).write(to: URL(fileURLWithPath: path(10)))
            try Data("keep me".utf8).write(to: URL(fileURLWithPath: dir + "/README"))

            let capture = spoolTestLogger()
            let spool = try Spool(directory: dir, maxBytes: 1 << 24, logger: capture.logger)
            #expect(!FileManager.default.fileExists(atPath: tempLeftover), "temp leftovers are deleted at start")
            #expect(!FileManager.default.fileExists(atPath: dir + "/other.tmp"))
            #expect(capture.lines(atLeast: .warning).isEmpty, "temp leftovers are deleted silently")
            #expect(capture.lines(atLeast: .debug).contains { $0.contains(".rec.tmp") })

            var replayed: [UInt64] = []
            var corrupt: [UInt64] = []
            while let entry = takeRecord(spool, corrupt: &corrupt) {
                #expect(entry.record == sampleRecord(Int(entry.sequence) - 1, bodySize: 3000))
                replayed.append(entry.sequence)
                spool.remove(entry.sequence)
            }
            #expect(replayed == [1, 3, 5, 8])
            #expect(corrupt == [2, 4, 6, 7, 10], "each damaged record is reported, so it can be counted as dropped")

            let warnings = capture.lines(atLeast: .warning)
            #expect(warnings.count == 5, "one warning per damaged file: \(warnings)")
            for n in [2, 4, 6, 7, 10] {
                let name = String(format: "%020d.rec", n)
                #expect(warnings.filter { $0.contains(name) }.count == 1, "warning naming \(name)")
                #expect(!FileManager.default.fileExists(atPath: path(n)), "\(name) is moved out of the way")
            }
            #expect(warnings.contains { $0.contains("00000000000000000002.rec") && $0.contains("checksum") })
            #expect(warnings.contains { $0.contains("00000000000000000006.rec") && $0.contains("magic") })
            #expect(warnings.contains { $0.contains("00000000000000000007.rec") && $0.contains("version") })
            #expect(spool.usage == (items: 0, bytes: 0))
            #expect(spoolFileNames(dir) == ["README"])
            // New sequences continue above the highest seen, damaged or not.
            #expect(spool.highestRecoveredSequence == 10)
        }
    }

    /// A record that can never be read (here: a directory in its place) must not hold back
    /// the newer ones by being retried first forever.
    @Test func aRecordThatCannotBeReadIsSkippedNotRetriedForever() throws {
        try withSpoolDirectory { dir in
            let capture = spoolTestLogger()
            let spool = try Spool(directory: dir, maxBytes: 1 << 24, logger: capture.logger)
            for i in 0..<3 { try spool.append(sampleRecord(i), sequence: UInt64(i + 1)) }
            let path = dir + "/00000000000000000001.rec"
            try FileManager.default.removeItem(atPath: path)
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
            var corrupt: [UInt64] = []
            var read: [UInt64] = []
            while let entry = takeRecord(spool, corrupt: &corrupt) { read.append(entry.sequence) }
            #expect(corrupt == [1] && read == [2, 3])
            #expect(capture.lines(atLeast: .warning).contains { $0.contains("00000000000000000001.rec") })
        }
    }

    @Test func aFolderIsUsedByOneProcessAtATime() throws {
        try withSpoolDirectory { dir in
            let first = try Spool(directory: dir, maxBytes: 1 << 20, logger: spoolTestLogger().logger)
            do throws(SpoolError) {
                _ = try Spool(directory: dir, maxBytes: 1 << 20, logger: spoolTestLogger().logger)
                Issue.record("a second opener got the folder")
            } catch {
                #expect(error.code == .inUse && error.message.contains("PYROSCOPE_SPOOL_DIR"))
            }
            _ = first
        }
    }

    // MARK: Unusable directory

    @Test func unusableDirectoryThrows() throws {
        try withSpoolDirectory { dir in
            let file = dir + "/plain-file"
            try Data("x".utf8).write(to: URL(fileURLWithPath: file))
            for path in [file + "/spool", file, file + "/a/b"] {
                do throws(SpoolError) {
                    _ = try Spool(directory: path, maxBytes: 1 << 20, logger: spoolTestLogger().logger)
                    Issue.record("no error for \(path)")
                } catch {
                    #expect(error.code == .unusableDirectory, "\(path): \(error)")
                }
            }
            // Missing parents are created, mode 0700.
            let nested = dir + "/a/b/spool/"
            let spool = try Spool(directory: nested, maxBytes: 1 << 20, logger: spoolTestLogger().logger)
            try spool.append(sampleRecord(0), sequence: 1)
            let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/a/b/spool")
            #expect((attributes[.posixPermissions] as? Int) == 0o700)
            #expect(spoolFileNames(dir + "/a/b/spool") == ["00000000000000000001.rec"])
        }
    }
}
