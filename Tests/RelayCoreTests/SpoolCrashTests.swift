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

/// The spool's promise under crashes: what was acknowledged is on disk, whole.
@Suite("Spool crashes")
struct SpoolCrashTests {
    /// What makes kill -9 safe: a `.rec` file is never visible before it is complete.
    /// A reader polls the directory while records are appended and decodes every
    /// `.rec` it sees; with a plain write to the final name it sees empty or partial files.
    @Test func aRecordFileIsNeverVisibleBeforeItIsComplete() async throws {
        try await withSpoolDirectoryAsync { dir in
            let spool = try Spool(directory: dir, maxBytes: 1 << 30, logger: spoolTestLogger().logger)
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
                        if case .failure(let reason) = SpoolRecordCodec.decode([UInt8](data)) {
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
                    try spool.append(sampleRecord(i, bodySize: 16 * 1024), sequence: UInt64(i + 1))
                    if i >= 2 { spool.remove(UInt64(i - 1)) }  // keep the directory small
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
                let spool = try Spool(directory: dir, maxBytes: 1 << 30, logger: capture.logger)
                #expect(!spoolFileNames(dir).contains { $0.hasSuffix(".tmp") })
                var replayed: [UInt64] = []
                while let entry = takeRecord(spool) {
                    let n = try #require(Int(entry.record.target.split(separator: "=").last ?? ""))
                    #expect(entry.record == killChildRecord(n), "record \(entry.sequence) is intact")
                    if let acknowledgedN = run.acknowledged[entry.sequence] { #expect(acknowledgedN == n) }
                    replayed.append(entry.sequence)
                    spool.remove(entry.sequence)
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
        let spool = try Spool(
            directory: dir, maxBytes: 1 << 30, logger: Logger(label: "child", factory: { _ in SwiftLogNoOpLogHandler() }))
        let deadline = ContinuousClock.now + .seconds(40)
        var n = 0
        while n < 100_000, ContinuousClock.now < deadline {
            let sequence = UInt64(n + 1)
            try spool.append(killChildRecord(n), sequence: sequence)
            let line = Array("SPOOLID \(sequence) \(n)\n".utf8)
            line.withUnsafeBytes { _ = write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            n += 1
        }
    }

}
