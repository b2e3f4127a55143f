import Foundation
import Logging
import Synchronization
import Testing

@testable import RelayCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Set in the child process of the kill -9 test: the spool directory it writes to.
private let killChildDirectoryVariable = "DISKSPOOL_KILL_CHILD_DIR"
private let isKillChild = ProcessInfo.processInfo.environment[killChildDirectoryVariable] != nil

@Suite("DiskSpool")
struct DiskSpoolTests {
    // MARK: Round trip and format

    @Test func roundTripKeepsRepeatedHeadersBinaryAndEmptyBodies() throws {
        try withSpoolDirectory { dir in
            let spool = try DiskSpool(directory: dir, maxBytes: 1 << 20, logger: spoolTestLogger().logger)
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
                receivedAtUnixMs: 1_700_000_000_123,
                attempts: 2)
            let empty = SpoolRecord(
                method: "GET", target: "/", headers: [], body: [], receivedAtUnixMs: -1, attempts: 0)

            let binaryID = try spool.append(binary)
            let emptyID = try spool.append(empty)
            #expect(binaryID < emptyID)
            #expect(spoolFileNames(dir) == ["00000000000000000001.rec", "00000000000000000002.rec"])

            let first = try #require(spool.checkOutOldest())
            #expect(first.id == binaryID)
            #expect(first.record == binary)
            #expect(first.record.headers.map(\.name) == binary.headers.map(\.name))
            let second = try #require(spool.checkOutOldest())
            #expect(second.id == emptyID)
            #expect(second.record == empty)
            #expect(spool.checkOutOldest() == nil)
        }
    }

    @Test func recordEqualityComparesHeadersInOrder() {
        let a = SpoolRecord(
            method: "POST", target: "/", headers: [("A", "1"), ("B", "2")], body: [1], receivedAtUnixMs: 0,
            attempts: 0)
        var b = a
        #expect(a == b)
        b.headers = [("B", "2"), ("A", "1")]
        #expect(a != b)
        b.headers = [("A", "1"), ("B", "2"), ("B", "2")]
        #expect(a != b)
    }

    @Test func crc32MatchesTheIEEECheckValueAndTheBitwiseDefinition() {
        #expect(SpoolCRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(SpoolCRC32.checksum([]) == 0)
        var generator = SystemRandomNumberGenerator()
        for length in [1, 7, 8, 9, 15, 16, 17, 255, 1000, 4099] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(SpoolCRC32.checksum(bytes) == bitwiseCRC32(bytes), "length \(length)")
        }
    }

    // MARK: Order, check-out, check-in, remove

    @Test func replaysOldestFirstAcrossAHundredAppends() throws {
        try withSpoolDirectory { dir in
            let spool = try DiskSpool(directory: dir, maxBytes: 1 << 24, logger: spoolTestLogger().logger)
            var ids: [SpoolEntryID] = []
            for i in 0..<100 { ids.append(try spool.append(sampleRecord(i))) }
            #expect(ids == ids.sorted())
            #expect(spool.usage.items == 100)
            for i in 0..<100 {
                let entry = try #require(spool.checkOutOldest())
                #expect(entry.id == ids[i])
                #expect(entry.record == sampleRecord(i))
                spool.remove(entry.id)
            }
            #expect(spool.checkOutOldest() == nil)
            #expect(spool.usage.items == 0)
        }
    }

    @Test func concurrentCallersCheckOutDistinctEntries() async throws {
        try await withSpoolDirectoryAsync { dir in
            let spool = try DiskSpool(directory: dir, maxBytes: 1 << 24, logger: spoolTestLogger().logger)
            var appended: Set<SpoolEntryID> = []
            for i in 0..<200 { appended.insert(try spool.append(sampleRecord(i, bodySize: 256))) }

            let perTask = await withTaskGroup(of: [SpoolEntryID].self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var mine: [SpoolEntryID] = []
                        while let entry = spool.checkOutOldest() {
                            #expect(entry.record.target == "/ingest?i=\(entry.id.sequence - 1)")
                            mine.append(entry.id)
                        }
                        return mine
                    }
                }
                var all: [[SpoolEntryID]] = []
                for await ids in group { all.append(ids) }
                return all
            }
            let flat = perTask.flatMap { $0 }
            #expect(flat.count == 200)
            #expect(Set(flat) == appended)
            for ids in perTask { #expect(ids == ids.sorted(), "each caller sees increasing ids") }
            // Everything is checked out but still on disk.
            #expect(spool.usage.items == 200)
            #expect(spool.checkOutOldest() == nil)
        }
    }

    @Test func checkInMakesAnEntryAvailableAgainAndPersistsAttempts() throws {
        try withSpoolDirectory { dir in
            let logger = spoolTestLogger().logger
            let spool = try DiskSpool(directory: dir, maxBytes: 1 << 20, logger: logger)
            let firstID = try spool.append(sampleRecord(0))
            let secondID = try spool.append(sampleRecord(1))

            let out = try #require(spool.checkOutOldest())
            #expect(out.id == firstID)
            #expect(out.record.attempts == 0)
            // While checked out, the next caller gets the next entry.
            let other = try #require(spool.checkOutOldest())
            #expect(other.id == secondID)
            spool.checkIn(other.id, attempts: nil)

            let bytesBefore = spool.usage.bytes
            spool.checkIn(out.id, attempts: 3)
            #expect(spool.usage == (items: 2, bytes: bytesBefore))
            #expect(spoolFileNames(dir).allSatisfy { $0.hasSuffix(".rec") }, "no temp file left")

            // Back in place: the oldest again, with the new count.
            let again = try #require(spool.checkOutOldest())
            #expect(again.id == firstID)
            #expect(again.record.attempts == 3)
            var expected = sampleRecord(0)
            expected.attempts = 3
            #expect(again.record == expected)

            // nil keeps the persisted count.
            spool.checkIn(again.id, attempts: nil)
            #expect(try #require(spool.checkOutOldest()).record.attempts == 3)

            // The count is on disk: a new instance sees it.
            let reopened = try DiskSpool(directory: dir, maxBytes: 1 << 20, logger: logger)
            let replayed = try #require(reopened.checkOutOldest())
            #expect(replayed.id == firstID)
            #expect(replayed.record.attempts == 3)
            #expect(try #require(reopened.checkOutOldest()).record.attempts == 0)

            // Checking in an entry that is not checked out changes nothing.
            reopened.checkIn(SpoolEntryID(sequence: 999), attempts: 5)
            #expect(reopened.usage.items == 2)
        }
    }

    @Test func removeDeletesTheFile() throws {
        try withSpoolDirectory { dir in
            let spool = try DiskSpool(directory: dir, maxBytes: 1 << 20, logger: spoolTestLogger().logger)
            let a = try spool.append(sampleRecord(0))
            let b = try spool.append(sampleRecord(1))
            #expect(spoolFileNames(dir).count == 2)

            let entry = try #require(spool.checkOutOldest())
            #expect(entry.id == a)
            spool.remove(entry.id)
            #expect(spoolFileNames(dir) == ["00000000000000000002.rec"])
            // A not-checked-out entry can be removed too, and is then never returned.
            spool.remove(b)
            #expect(spoolFileNames(dir).isEmpty)
            #expect(spool.checkOutOldest() == nil)
            spool.remove(b)  // unknown by now: no-op
            #expect(spool.usage == (items: 0, bytes: 0))
        }
    }

    // MARK: Capacity

    @Test func throwsFullWhenMaxBytesWouldBeExceededAndAccountsBackToZero() throws {
        try withSpoolDirectory { dir in
            // Measure one record's encoded size (the same for every sampleRecord of one body size).
            let probe = try DiskSpool(directory: dir, maxBytes: 1 << 20, logger: spoolTestLogger().logger)
            let probeID = try probe.append(sampleRecord(0, bodySize: 1000))
            let recordSize = probe.usage.bytes
            #expect(recordSize > 1000, "sizes include the encoding overhead")
            #expect(recordSize == fileSize(dir + "/00000000000000000001.rec"))
            probe.remove(probeID)

            let spool = try DiskSpool(directory: dir, maxBytes: 3 * recordSize, logger: spoolTestLogger().logger)
            var ids: [SpoolEntryID] = []
            for i in 1...3 { ids.append(try spool.append(sampleRecord(i, bodySize: 1000))) }
            #expect(spool.usage == (items: 3, bytes: 3 * recordSize))

            #expect(throws: SpoolError.self) { try spool.append(sampleRecord(4, bodySize: 1000)) }
            do throws(SpoolError) {
                _ = try spool.append(sampleRecord(4, bodySize: 1000))
                Issue.record("append past maxBytes did not throw")
            } catch {
                #expect(error.code == .full)
                #expect(!error.message.isEmpty)
            }
            #expect(spoolFileNames(dir).count == 3, "a refused append leaves no file")
            #expect(spool.usage == (items: 3, bytes: 3 * recordSize))

            // Removing one makes room for exactly one more.
            spool.remove(ids.removeFirst())
            ids.append(try spool.append(sampleRecord(5, bodySize: 1000)))
            do throws(SpoolError) {
                _ = try spool.append(sampleRecord(6, bodySize: 1000))
                Issue.record("append past maxBytes did not throw")
            } catch {
                #expect(error.code == .full)
            }

            // A record bigger than the whole spool never fits, even when empty.
            for id in ids { spool.remove(id) }
            #expect(spool.usage == (items: 0, bytes: 0))
            #expect(spoolFileNames(dir).isEmpty)
            do throws(SpoolError) {
                _ = try spool.append(sampleRecord(7, bodySize: 3 * recordSize))
                Issue.record("oversized append did not throw")
            } catch {
                #expect(error.code == .full)
            }
            #expect(spool.usage == (items: 0, bytes: 0))
        }
    }

    // MARK: Restart and crash leftovers

    @Test func newInstanceReplaysEarlierRecordsInOrderAndContinuesTheSequence() throws {
        try withSpoolDirectory { dir in
            var written: [SpoolEntryID] = []
            do {
                let first = try DiskSpool(directory: dir, maxBytes: 1 << 24, logger: spoolTestLogger().logger)
                for i in 0..<50 { written.append(try first.append(sampleRecord(i))) }
                // One is checked out when the instance goes away: it must come back too.
                #expect(try #require(first.checkOutOldest()).id == written[0])
            }

            let capture = spoolTestLogger()
            let second = try DiskSpool(directory: dir, maxBytes: 1 << 24, logger: capture.logger)
            #expect(second.usage.items == 50)
            let newID = try second.append(sampleRecord(50))
            #expect(newID > written.last!)
            #expect(newID.sequence == 51)

            for i in 0..<50 {
                let entry = try #require(second.checkOutOldest())
                #expect(entry.id == written[i])
                #expect(entry.record == sampleRecord(i))
                second.remove(entry.id)
            }
            #expect(try #require(second.checkOutOldest()).id == newID)
            #expect(capture.lines(atLeast: .warning).isEmpty)
        }
    }

    @Test func crashLeftoversAndDamagedRecordsAreSkippedWithAWarning() throws {
        try withSpoolDirectory { dir in
            var ids: [SpoolEntryID] = []
            do {
                let writer = try DiskSpool(directory: dir, maxBytes: 1 << 24, logger: spoolTestLogger().logger)
                for i in 0..<8 { ids.append(try writer.append(sampleRecord(i, bodySize: 3000))) }
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
            let spool = try DiskSpool(directory: dir, maxBytes: 1 << 24, logger: capture.logger)
            #expect(!FileManager.default.fileExists(atPath: tempLeftover), "temp leftovers are deleted at start")
            #expect(!FileManager.default.fileExists(atPath: dir + "/other.tmp"))
            #expect(capture.lines(atLeast: .warning).isEmpty, "temp leftovers are deleted silently")
            #expect(capture.lines(atLeast: .debug).contains { $0.contains(".rec.tmp") })

            var replayed: [SpoolEntryID] = []
            while let entry = spool.checkOutOldest() {
                #expect(entry.record == sampleRecord(Int(entry.id.sequence) - 1, bodySize: 3000))
                replayed.append(entry.id)
                spool.remove(entry.id)
            }
            #expect(replayed.map(\.sequence) == [1, 3, 5, 8])

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
            // New appends continue after the highest sequence seen, damaged or not.
            #expect(try spool.append(sampleRecord(0)).sequence == 11)
        }
    }

    /// What makes kill -9 safe: a `.rec` file is never visible before it is complete.
    /// A reader polls the directory while records are appended and decodes every
    /// `.rec` it sees; with a plain write to the final name it sees empty or partial files.
    @Test func aRecordFileIsNeverVisibleBeforeItIsComplete() async throws {
        try await withSpoolDirectoryAsync { dir in
            let spool = try DiskSpool(directory: dir, maxBytes: 1 << 30, logger: spoolTestLogger().logger)
            let flags = ObserverFlags()
            // Both sides on their own threads, so they really run at the same time.
            async let observed: [String] = onDedicatedThread {
                var torn: [String] = []
                var seen: Set<String> = []  // name and size: decode each version once
                while !flags.done.load(ordering: .acquiring) {
                    for name in spoolFileNames(dir) where name.hasSuffix(".rec") {
                        guard let data = FileManager.default.contents(atPath: dir + "/" + name),
                            seen.insert("\(name) \(data.count)").inserted
                        else { continue }
                        flags.checked.add(1, ordering: .relaxed)
                        if case .failure(let reason) = SpoolCodec.decode([UInt8](data)) {
                            torn.append("\(name): \(reason.text)")
                        }
                    }
                }
                return torn
            }
            try await onDedicatedThread {
                defer { flags.done.store(true, ordering: .releasing) }
                var i = 0
                // At least 200 appends, more (bounded) until the reader has looked at 50 records.
                while i < 200 || (flags.checked.load(ordering: .relaxed) < 50 && i < 5000) {
                    let id = try spool.append(sampleRecord(i, bodySize: 16 * 1024))
                    if i >= 2 { spool.remove(SpoolEntryID(sequence: id.sequence - 2)) }  // keep the directory small
                    i += 1
                }
            }
            let torn = try await observed
            #expect(flags.checked.load(ordering: .relaxed) >= 50)
            #expect(torn.isEmpty, "a reader saw incomplete records: \(torn.prefix(5))")
        }
    }

    // MARK: kill -9

    /// Spawns a child process (this test binary, running only
    /// `killChildWriterEntryPoint`) that appends records in a loop and prints each
    /// id it gets back; SIGKILLs it mid-way; then replays the directory.
    @Test(.enabled(if: !isKillChild), .timeLimit(.minutes(1)))
    func everyAcknowledgedRecordSurvivesKill9() async throws {
        #if os(Linux)
            try await withSpoolDirectoryAsync { dir in
                // The child and the blocking pipe reads run on a thread of their own.
                let run = try await onDedicatedThread { () throws -> KillRun in
                    let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
                    let child = Process()
                    child.executableURL = URL(fileURLWithPath: executable)
                    child.arguments = ["--testing-library", "swift-testing", "--filter", "killChildWriterEntryPoint"]
                    var environment = ProcessInfo.processInfo.environment
                    environment[killChildDirectoryVariable] = dir
                    child.environment = environment
                    let stdout = Pipe()
                    child.standardOutput = stdout
                    child.standardError = FileHandle.nullDevice
                    try child.run()
                    let pid = child.processIdentifier
                    // Watchdog only: normally the child is killed as soon as enough ids arrived.
                    let watchdog = Task {
                        try await Task.sleep(for: .seconds(45))
                        kill(pid, SIGKILL)
                    }
                    defer { watchdog.cancel() }

                    var run = KillRun()
                    var pending = Data()
                    let reader = stdout.fileHandleForReading
                    while true {
                        let chunk = reader.availableData
                        if chunk.isEmpty { break }  // EOF: the child is gone
                        pending.append(chunk)
                        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                            let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                            pending.removeSubrange(pending.startIndex...newline)
                            let parts = line.split(separator: " ")
                            if parts.count == 3, parts[0] == "SPOOLID", let seq = UInt64(parts[1]), let n = Int(parts[2]) {
                                run.acknowledged[seq] = n
                            }
                        }
                        if !run.killed, run.acknowledged.count >= 300 {
                            kill(pid, SIGKILL)
                            run.killed = true
                        }
                    }
                    child.waitUntilExit()
                    run.bySignal = child.terminationReason == .uncaughtSignal
                    run.status = child.terminationStatus
                    return run
                }
                #expect(run.killed, "the child ended before it was killed")
                #expect(run.bySignal)
                #expect(run.status == SIGKILL)
                #expect(run.acknowledged.count >= 300)

                let capture = spoolTestLogger()
                let spool = try DiskSpool(directory: dir, maxBytes: 1 << 30, logger: capture.logger)
                #expect(!spoolFileNames(dir).contains { $0.hasSuffix(".tmp") })
                var replayed: [UInt64] = []
                while let entry = spool.checkOutOldest() {
                    let n = try #require(Int(entry.record.target.split(separator: "=").last ?? ""))
                    #expect(entry.record == killChildRecord(n), "record \(entry.id) is intact")
                    if let acknowledgedN = run.acknowledged[entry.id.sequence] { #expect(acknowledgedN == n) }
                    replayed.append(entry.id.sequence)
                    spool.remove(entry.id)
                }
                #expect(replayed == replayed.sorted())
                let missing = Set(run.acknowledged.keys).subtracting(replayed)
                #expect(missing.isEmpty, "acknowledged but lost: \(missing.sorted())")
                // At most the one append in flight at the kill may have landed unacknowledged.
                #expect(replayed.count - run.acknowledged.count <= 1)
                #expect(capture.lines(atLeast: .warning).isEmpty, "no corrupt record: \(capture.lines(atLeast: .warning))")
            }
        #endif
    }

    /// The child side of `everyAcknowledgedRecordSurvivesKill9`; skipped in a normal run.
    @Test(.enabled(if: isKillChild))
    func killChildWriterEntryPoint() throws {
        guard let dir = ProcessInfo.processInfo.environment[killChildDirectoryVariable] else { return }
        let spool = try DiskSpool(
            directory: dir, maxBytes: 1 << 30, logger: Logger(label: "child", factory: { _ in SwiftLogNoOpLogHandler() }))
        let deadline = ContinuousClock.now + .seconds(40)
        var n = 0
        while n < 100_000, ContinuousClock.now < deadline {
            let id = try spool.append(killChildRecord(n))
            let line = Array("SPOOLID \(id.sequence) \(n)\n".utf8)
            line.withUnsafeBytes { _ = write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            n += 1
        }
    }

    // MARK: Unusable directory

    @Test func unusableDirectoryThrows() throws {
        try withSpoolDirectory { dir in
            let file = dir + "/plain-file"
            try Data("x".utf8).write(to: URL(fileURLWithPath: file))
            for path in [file + "/spool", file, file + "/a/b"] {
                do throws(SpoolError) {
                    _ = try DiskSpool(directory: path, maxBytes: 1 << 20, logger: spoolTestLogger().logger)
                    Issue.record("no error for \(path)")
                } catch {
                    #expect(error.code == .unusableDirectory, "\(path): \(error)")
                }
            }
            // Missing parents are created, mode 0700.
            let nested = dir + "/a/b/spool/"
            let spool = try DiskSpool(directory: nested, maxBytes: 1 << 20, logger: spoolTestLogger().logger)
            _ = try spool.append(sampleRecord(0))
            let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/a/b/spool")
            #expect((attributes[.posixPermissions] as? Int) == 0o700)
            #expect(spoolFileNames(dir + "/a/b/spool") == ["00000000000000000001.rec"])
        }
    }
}

// MARK: - Helpers

private struct KillRun: Sendable {
    var acknowledged: [UInt64: Int] = [:]  // sequence -> record number, as printed by the child
    var killed = false
    var bySignal = false
    var status: Int32 = 0
}

private final class ObserverFlags: Sendable {
    let done = Atomic<Bool>(false)
    let checked = Atomic<Int>(0)
}

/// Runs blocking work on a thread of its own, off the (small) cooperative pool.
private func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

private func sampleRecord(_ i: Int, bodySize: Int = 100) -> SpoolRecord {
    SpoolRecord(
        method: i % 2 == 0 ? "POST" : "HEAD",  // same length: sizes depend on bodySize only (for i < 10)
        target: "/ingest?i=\(i)",
        headers: [("Content-Type", "application/octet-stream"), ("X-N", "\(i)"), ("X-N", "again")],
        body: (0..<bodySize).map { UInt8(truncatingIfNeeded: $0 &+ i) },
        receivedAtUnixMs: 1_700_000_000_000 + Int64(i),
        attempts: 0)
}

private func killChildRecord(_ n: Int) -> SpoolRecord {
    // Large enough that the kill often lands in the middle of a write.
    sampleRecord(n, bodySize: 32 * 1024 + n % 4096)
}

private func bitwiseCRC32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}

/// A fresh directory from mkdtemp, removed afterwards.
private func withSpoolDirectory(_ body: (String) throws -> Void) throws {
    let dir = try makeSpoolTempDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try body(dir)
}

private func withSpoolDirectoryAsync(_ body: (String) async throws -> Void) async throws {
    let dir = try makeSpoolTempDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try await body(dir)
}

private func makeSpoolTempDirectory() throws -> String {
    var template = Array((NSTemporaryDirectory() + "/diskspool-test-XXXXXX").utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard let made else { throw CocoaError(.fileWriteUnknown) }
    return String(cString: made)
}

private func spoolFileNames(_ dir: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
}

private func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? -1
}

/// Collects rendered log lines ("level message key=value ...") without touching
/// LoggingSystem.
private final class SpoolLogCapture: Sendable {
    private let storage = Mutex<[(Logger.Level, String)]>([])

    var logger: Logger {
        Logger(label: "diskspool-test", factory: { _ in SpoolCollectingLogHandler(capture: self) })
    }

    func record(_ level: Logger.Level, _ line: String) {
        storage.withLock { $0.append((level, line)) }
    }

    func lines(atLeast level: Logger.Level) -> [String] {
        storage.withLock { $0.filter { $0.0 >= level }.map(\.1) }
    }
}

private func spoolTestLogger() -> SpoolLogCapture { SpoolLogCapture() }

private struct SpoolCollectingLogHandler: LogHandler {
    let capture: SpoolLogCapture
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let rendered = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        capture.record(event.level, "\(event.level) \(event.message) \(rendered)")
    }
}
