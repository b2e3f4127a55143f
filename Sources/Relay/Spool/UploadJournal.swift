import Logging
import NIOCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An append-only log of the uploads held in memory, so an upload acknowledged with 200
/// survives the process being killed (`kill -9`, the OOM killer, Lambda's SIGKILL at the end
/// of a shutdown) wherever the spool folder survives. The next start turns what the log
/// holds without an end into spool records, which are replayed as usual.
///
/// One `write(2)` per upload and one per end, appended to an open segment file: measured
/// here at 2.9 µs of CPU per 1 KB upload, against 22 µs for a file per upload (creating an
/// inode dominates) and about 115 µs for relaying the upload at all. No fsync: the page
/// cache outlives the process (see `SpoolFiles`). Appends from several event loops need no
/// lock (`O_APPEND` writes do not interleave); the lock guards the segment bookkeeping.
///
///     journal-<segment>.log   frames, in order:
///       "E" sequence(UInt64) length(UInt32) record   an upload (a spool record, with its CRC)
///       "D" sequence(UInt64) crc32(UInt32)           its end (delivered or dropped)
///
/// A segment rolls over past `segmentBytes`; a rolled-over segment whose uploads have all
/// ended is deleted. A torn last frame (a kill mid-write) fails its CRC and ends the replay.
final class UploadJournal: Sendable {
    /// Which segment holds an upload's entry, so its end goes to the same file and the
    /// segment can be deleted once nothing in it is live.
    struct Entry: Sendable {
        let sequence: UInt64
        let segment: UInt64
    }

    private struct Segment {
        var descriptor: Int32
        var bytes = 0
        var live = 0
    }

    private struct State {
        var segments: [UInt64: Segment] = [:]
        var current: UInt64
    }

    static let prefix = "journal-"
    static let suffix = ".log"

    let directory: String
    let segmentBytes: Int
    private let state: Mutex<State>
    private let logger: Logger
    private let failureLog = LogRateLimiter()

    /// Opens a new segment numbered after any left by an earlier run (call `recover` first).
    init(directory: String, segmentBytes: Int = 4 << 20, logger: Logger) throws(SpoolError) {
        self.directory = directory
        self.segmentBytes = segmentBytes
        self.logger = logger
        let first = (Self.segmentNumbers(in: directory).max() ?? 0) + 1
        let descriptor = try Self.open(Self.path(directory, first))
        state = Mutex(State(segments: [first: Segment(descriptor: descriptor)], current: first))
    }

    deinit {
        state.withLock { state in for segment in state.segments.values { close(segment.descriptor) } }
    }

    /// Logs the upload before it is acknowledged; nil when the write failed (the upload is
    /// still relayed, only without this protection).
    func record(_ upload: Upload, sequence: UInt64, receivedAtUnixMs: Int64) -> Entry? {
        var frame: [UInt8] = [UInt8(ascii: "E")]
        appendInteger(&frame, sequence)
        let lengthAt = frame.count
        appendInteger(&frame, UInt32(0))
        do {
            try SpoolRecordCodec.encode(upload, receivedAtUnixMs: receivedAtUnixMs, into: &frame)
        } catch {
            return nil
        }
        let length = UInt32(frame.count - lengthAt - 4)
        withUnsafeBytes(of: length.littleEndian) { frame.replaceSubrange(lengthAt..<lengthAt + 4, with: $0) }
        let (segment, descriptor) = state.withLock { state -> (UInt64, Int32) in
            state.segments[state.current]!.live += 1
            state.segments[state.current]!.bytes += frame.count
            return (state.current, state.segments[state.current]!.descriptor)
        }
        guard writeAll(descriptor, frame) else {
            end(segment, written: false)
            return nil
        }
        rollOverIfFull()
        return Entry(sequence: sequence, segment: segment)
    }

    /// The upload ended (delivered or dropped): it is not replayed.
    func finished(_ entry: Entry) {
        var frame: [UInt8] = [UInt8(ascii: "D")]
        appendInteger(&frame, entry.sequence)
        appendInteger(&frame, SpoolRecordCodec.checksum(frame[...]))
        let descriptor = state.withLock { $0.segments[entry.segment]?.descriptor }
        let written = descriptor.map { writeAll($0, frame) } ?? false
        end(entry.segment, written: written)
    }

    /// Counts an end; deletes a rolled-over segment once nothing in it is live.
    private func end(_ number: UInt64, written: Bool) {
        let retired = state.withLock { state -> Int32? in
            guard var segment = state.segments[number] else { return nil }
            segment.live -= 1
            state.segments[number] = segment
            guard segment.live == 0, number != state.current else { return nil }
            state.segments[number] = nil
            return segment.descriptor
        }
        if let retired {
            close(retired)
            unlink(Self.path(directory, number))
        }
    }

    private func rollOverIfFull() {
        let (full, next) = state.withLock { ($0.segments[$0.current]!.bytes >= segmentBytes, $0.current + 1) }
        guard full, let descriptor = try? Self.open(Self.path(directory, next)) else { return }
        let retired = state.withLock { state -> (UInt64, Int32)? in
            guard state.current + 1 == next else {
                close(descriptor)  // another loop rolled over first
                return nil
            }
            let previous = state.current
            state.current = next
            state.segments[next] = Segment(descriptor: descriptor)
            guard state.segments[previous]!.live == 0 else { return nil }
            defer { state.segments[previous] = nil }
            return (previous, state.segments[previous]!.descriptor)
        }
        if let (number, old) = retired {
            close(old)
            unlink(Self.path(directory, number))
        }
    }

    private func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
        let written = bytes.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let count = write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if count < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += count
            }
            return true
        }
        if !written, let suppressed = failureLog.admit("journal") {
            logger.warning(
                "Could not journal an upload: it is relayed, but would not survive the process being killed",
                metadata: ["error": "\(SpoolFiles.errnoText())", "suppressed": .stringConvertible(suppressed)])
        }
        return written
    }

    // MARK: Files

    static func path(_ directory: String, _ number: UInt64) -> String { "\(directory)/\(prefix)\(number)\(suffix)" }

    static func open(_ path: String) throws(SpoolError) -> Int32 {
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw SpoolError(code: .io, message: "open \(path): \(SpoolFiles.errnoText())") }
        return descriptor
    }

    static func segmentNumbers(in directory: String) -> [UInt64] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var numbers: [UInt64] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { continue }
            if let number = UInt64(name.dropFirst(prefix.utf8.count).dropLast(suffix.utf8.count)) { numbers.append(number) }
        }
        return numbers.sorted()
    }
}

func appendInteger<T: FixedWidthInteger>(_ out: inout [UInt8], _ value: T) {
    withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
}
