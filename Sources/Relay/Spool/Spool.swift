import Logging
import Synchronization

/// Uploads that do not fit in the memory queue, on disk: kept across crashes and `kill -9`
/// and replayed oldest first. The delivery pipeline owns it and decides the sequence of
/// each record (one numbering for memory and disk, so "accepted before" means the same
/// everywhere). Blocking file I/O: called on a thread pool, never on an event loop.
///
/// The limit counts disk blocks, not record bytes: a 1 KB record takes a 4 KB block.
/// The index lives behind a lock; no file I/O happens under it: an append reserves its
/// disk under the lock, writes outside it, then commits (or gives the reservation back).
final class Spool: Sendable {
    let files: SpoolFiles
    let maxBytes: Int
    private let logger: Logger
    private let index = Mutex(SpoolIndex())
    /// The highest sequence found on disk at start (0 when none): new sequences go above it.
    let highestRecoveredSequence: UInt64
    /// Records found on disk at start, oldest first (uploads an earlier run journaled
    /// without an end among them).
    let recovered: [UInt64]
    /// The folder's lock: held until the relay stopped (`releaseFolder`) or the process ended.
    private let lock: Mutex<Int32>

    /// Opens the folder: takes it for this process, turns what an earlier run's journal holds
    /// without an end into records, then indexes the records.
    init(directory: String, maxBytes: Int, logger: Logger, sync: Bool = false) throws(SpoolError) {
        files = try SpoolFiles(directory: directory, sync: sync)
        let descriptor = try files.lockForThisProcess()
        lock = Mutex(descriptor)
        self.maxBytes = maxBytes
        self.logger = logger
        _ = UploadJournal.recover(into: files, logger: logger)
        let scan: (records: [SpoolFiles.ScannedRecord], deletedLeftovers: [String])
        do { scan = try files.scan() } catch {
            close(descriptor)
            throw error
        }
        for name in scan.deletedLeftovers {
            logger.debug("spool: deleted a leftover temp file", metadata: [LogKey.file: "\(files.directory)/\(name)"])
        }
        index.withLock { index in
            for record in scan.records { index.insert(record.sequence, diskBytes: record.diskBytes, reserved: false) }
        }
        recovered = scan.records.map(\.sequence)
        highestRecoveredSequence = scan.records.last?.sequence ?? 0
    }

    /// Lets another relay use the folder: this one stopped (its senders are done).
    func releaseFolder() {
        lock.withLock { descriptor in
            if descriptor >= 0 { close(descriptor) }
            descriptor = -1
        }
    }

    deinit { releaseFolder() }

    /// Records on disk (checked out ones included) and the disk they take, reservations of
    /// appends in flight included.
    var usage: (items: Int, bytes: Int) { index.withLock { ($0.count, $0.diskBytes) } }

    /// Writes the record as `sequence`. Throws `.full` when it does not fit under
    /// `maxBytes`, `.io` when a write fails (nothing partial is left behind).
    func append(_ record: SpoolRecord, sequence: UInt64) throws(SpoolError) {
        let encoded = try SpoolRecordCodec.encode(record)
        let bytes = files.diskBytes(forSize: encoded.count)
        let (reserved, used) = index.withLock { ($0.reserve(bytes, limit: maxBytes), $0.diskBytes) }
        guard reserved else {
            throw SpoolError(code: .full, message: "record of \(bytes) bytes on disk does not fit (\(used) of \(maxBytes) bytes used)")
        }
        do {
            try files.write(sequence, bytes: encoded)
        } catch {
            index.withLock { $0.cancelReservation(bytes) }
            logger.warning("spool: append failed", metadata: [LogKey.file: "\(SpoolFiles.fileName(sequence))", LogKey.error: "\(error.message)"])
            throw error
        }
        index.withLock { $0.insert(sequence, diskBytes: bytes, reserved: true) }
    }

    enum CheckOut {
        case record(UInt64, SpoolRecord)
        /// Could not be decoded (torn, truncated, damaged, foreign): logged and deleted.
        case corrupt(UInt64)
        /// Deleted behind the spool's back: nothing to replay.
        case vanished(UInt64)
        /// Could not be read now (say, out of file descriptors); put back for later.
        case unreadable
        case empty
    }

    /// The oldest record not checked out, read from disk; it stays checked out until
    /// `remove` (or the process ends), so concurrent callers get different records.
    func checkOutOldest() -> CheckOut {
        guard let sequence = index.withLock({ $0.checkOutOldest() }) else { return .empty }
        switch files.read(sequence) {
        case .success(let bytes):
            switch SpoolRecordCodec.decode(bytes) {
            case .success(let record):
                return .record(sequence, record)
            case .failure(let reason):
                let path = files.path(sequence)
                logger.warning(
                    "spool: skipping corrupt record \(SpoolFiles.fileName(sequence))",
                    metadata: [LogKey.file: "\(path)", LogKey.reason: "\(reason.text)"])
                if let error = files.remove(sequence) {
                    logger.error("spool: cannot delete corrupt record", metadata: [LogKey.file: "\(path)", LogKey.error: "\(error)"])
                }
                index.withLock { _ = $0.remove(sequence) }
                return .corrupt(sequence)
            }
        case .failure(let failure) where failure.errno == ENOENT:
            logger.debug("spool: record vanished", metadata: [LogKey.file: "\(files.path(sequence))"])
            index.withLock { _ = $0.remove(sequence) }
            return .vanished(sequence)
        case .failure(let failure) where Self.transientErrors.contains(failure.errno):
            logger.warning("spool: cannot read record, will retry later", metadata: [LogKey.error: "\(failure.message)"])
            index.withLock { $0.checkIn(sequence) }
            return .unreadable
        case .failure(let failure):
            // Not a passing shortage: retrying would put it first forever and hold back every
            // newer record, so it goes as a corrupt record does.
            logger.warning(
                "spool: skipping unreadable record \(SpoolFiles.fileName(sequence))",
                metadata: [LogKey.file: "\(files.path(sequence))", LogKey.error: "\(failure.message)"])
            index.withLock { _ = $0.remove(sequence) }
            return .corrupt(sequence)
        }
    }

    /// Read failures that pass (descriptors or memory short for a moment).
    static let transientErrors: Set<Int32> = [EMFILE, ENFILE, ENOMEM, EAGAIN, EINTR]

    /// Deletes every record no sender has checked out, up to a sequence; returns theirs.
    func removeAvailable(through last: UInt64 = .max) -> [UInt64] {
        let removed = index.withLock { index in
            var removed: [UInt64] = []
            while let sequence = index.checkOutOldest() {
                guard sequence <= last else {
                    index.checkIn(sequence)
                    break
                }
                index.remove(sequence)
                removed.append(sequence)
            }
            return removed
        }
        for sequence in removed { files.remove(sequence) }
        return removed
    }

    /// Deletes the record (delivered, or finally dropped). Unknown sequences are ignored.
    func remove(_ sequence: UInt64) {
        guard index.withLock({ $0.remove(sequence) }) else { return }
        if let error = files.remove(sequence) {
            logger.error("spool: cannot delete record", metadata: [LogKey.file: "\(files.path(sequence))", LogKey.error: "\(error)"])
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
