import Foundation
import Logging
import Synchronization

@testable import RelayCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// Helpers shared by the spool test suites.

struct KillRun: Sendable {
    var acknowledged: [UInt64: Int] = [:]  // sequence -> record number, as printed by the child
    var killed = false
    var bySignal = false
    var status: Int32 = 0
}

final class ObserverFlags: Sendable {
    let done = Atomic<Bool>(false)
    let checked = Atomic<Int>(0)
}

/// Runs blocking work on a thread of its own, off the (small) cooperative pool.
func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

func sampleRecord(_ i: Int, bodySize: Int = 100) -> SpoolRecord {
    SpoolRecord(
        method: i % 2 == 0 ? "POST" : "HEAD",  // same length: sizes depend on bodySize only (for i < 10)
        target: "/ingest?i=\(i)",
        headers: [("Content-Type", "application/octet-stream"), ("X-N", "\(i)"), ("X-N", "again")],
        body: (0..<bodySize).map { UInt8(truncatingIfNeeded: $0 &+ i) },
        receivedAtUnixMs: 1_700_000_000_000 + Int64(i))
}

/// The next record a sender would get, skipping (and returning the sequences of) corrupt ones.
func takeRecord(_ spool: Spool, corrupt: inout [UInt64]) -> (sequence: UInt64, record: SpoolRecord)? {
    while true {
        switch spool.checkOutOldest() {
        case .record(let sequence, let record): return (sequence, record)
        case .corrupt(let sequence), .vanished(let sequence): corrupt.append(sequence)
        case .unreadable, .empty: return nil
        }
    }
}

func takeRecord(_ spool: Spool) -> (sequence: UInt64, record: SpoolRecord)? {
    var ignored: [UInt64] = []
    return takeRecord(spool, corrupt: &ignored)
}

func killChildRecord(_ n: Int) -> SpoolRecord {
    // Large enough that the kill often lands in the middle of a write.
    sampleRecord(n, bodySize: 32 * 1024 + n % 4096)
}

func bitwiseCRC32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}

/// A fresh directory from mkdtemp, removed afterwards.
func withSpoolDirectory(_ body: (String) throws -> Void) throws {
    let dir = try makeSpoolTempDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try body(dir)
}

func withSpoolDirectoryAsync(_ body: (String) async throws -> Void) async throws {
    let dir = try makeSpoolTempDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try await body(dir)
}

func makeSpoolTempDirectory() throws -> String {
    var template = Array((NSTemporaryDirectory() + "/diskspool-test-XXXXXX").utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard let made else { throw CocoaError(.fileWriteUnknown) }
    return String(cString: made)
}

/// The folder's files, without its `.lock`.
func spoolFileNames(_ dir: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0 != ".lock" }.sorted()
}

func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? -1
}

/// Collects rendered log lines ("level message key=value ...") without touching
/// LoggingSystem.
final class SpoolLogCapture: Sendable {
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

func spoolTestLogger() -> SpoolLogCapture { SpoolLogCapture() }

struct SpoolCollectingLogHandler: LogHandler {
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
