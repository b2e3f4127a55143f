import RelayMetrics

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The spool directory's files, with plain POSIX calls (blocking: callers run them on a
/// thread pool, never on an event loop).
///
///     00000000000000000042.rec       a complete record (sequence 42)
///     00000000000000000043.rec.tmp   a record being written, or a crash leftover
///
/// Anything else in the directory is ignored. A record is written in full to
/// `<seq>.rec.tmp` and only then renamed to `<seq>.rec`; rename(2) is atomic, so a `.rec`
/// file is either absent or complete, and a crash mid-write leaves only a `.tmp` that the
/// next start deletes.
///
/// fsync is off by default. What must survive here is the death of the *process* (a crash,
/// an OOM kill, `kill -9`, Lambda killing the extension at the end of its shutdown window):
/// once write(2) and rename(2) returned, data and directory entry are in the kernel's page
/// and dentry caches, and any later process sees them. fsync only protects against the
/// kernel going away, and on Lambda /tmp goes with the microVM then, so nobody would
/// replay the records anyway. Measured on the development VM (ext4 on virtio): 0.8–7 ms
/// per synced append against 0.15–0.9 ms unsynced, which caps a synced spool at a few
/// hundred appends/s. `sync: true` is there for spools on storage that outlives the machine.
struct SpoolFiles: Sendable {
    let directory: String
    let sync: Bool
    /// The file system's allocation unit: a record costs whole blocks of disk.
    let blockSize: Int

    static let recordSuffix = ".rec"
    static let tempSuffix = ".tmp"

    /// Takes the folder for this process (an advisory lock on `.lock`, released by the kernel
    /// when the process ends, however it ends); returns the descriptor to keep open. Two
    /// relays sharing a folder would replay and delete each other's records.
    func lockForThisProcess() throws(SpoolError) -> Int32 {
        let path = directory + "/.lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw SpoolError(code: .unusableDirectory, message: "open \(path): \(errnoText())") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw SpoolError(code: .inUse, message: "\(directory) is in use by another relay process; set PYROSCOPE_SPOOL_DIR to a folder of its own")
        }
        return descriptor
    }

    /// Creates the directory if needed (mode 0700) and checks it can be written.
    init(directory: String, sync: Bool) throws(SpoolError) {
        var directory = directory
        while directory.utf8.count > 1, directory.hasSuffix("/") { directory.removeLast() }
        guard !directory.isEmpty else { throw SpoolError(code: .unusableDirectory, message: "empty spool directory path") }
        try Self.makeDirectories(directory)
        try Self.probeWritable(directory)
        var info = statvfs()
        self.directory = directory
        self.sync = sync
        self.blockSize = statvfs(directory, &info) == 0 && info.f_bsize > 0 ? Int(info.f_bsize) : 4096
    }

    /// Disk a file of `size` bytes takes: whole blocks (a 1 KB record still takes 4 KB).
    func diskBytes(forSize size: Int) -> Int {
        max(1, (size + blockSize - 1) / blockSize) * blockSize
    }

    func path(_ sequence: UInt64) -> String { directory + "/" + Self.fileName(sequence) }

    /// `%020d.rec`
    static func fileName(_ sequence: UInt64) -> String {
        let digits = String(sequence)
        return String(repeating: "0", count: max(0, 20 - digits.utf8.count)) + digits + recordSuffix
    }

    /// The sequence of a `%020d.rec` name, nil for any other name.
    static func sequence(ofRecordName name: String) -> UInt64? {
        let utf8 = name.utf8
        guard utf8.count == 24, name.hasSuffix(recordSuffix) else { return nil }
        let digits = utf8.prefix(20)
        guard digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return UInt64(String(decoding: digits, as: UTF8.self))
    }

    struct ScannedRecord {
        var sequence: UInt64
        var diskBytes: Int
    }

    /// Record files found (oldest first, with the disk they take) and the names of crash
    /// leftovers, which are deleted.
    func scan() throws(SpoolError) -> (records: [ScannedRecord], deletedLeftovers: [String]) {
        guard let names = directoryEntryNames(directory) else {
            throw SpoolError(code: .unusableDirectory, message: "cannot list \(directory): \(errnoText())")
        }
        var records: [ScannedRecord] = []
        var leftovers: [String] = []
        for name in names {
            let path = directory + "/" + name
            if name.hasSuffix(Self.tempSuffix) {
                unlink(path)
                leftovers.append(name)
                continue
            }
            guard let sequence = Self.sequence(ofRecordName: name) else { continue }
            var info = stat()
            guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            records.append(ScannedRecord(sequence: sequence, diskBytes: max(diskBytes(forSize: Int(info.st_size)), Int(info.st_blocks) * 512)))
        }
        records.sort { $0.sequence < $1.sequence }
        return (records, leftovers)
    }

    /// Writes a complete record file: temp file, optional fsync, rename (then, with
    /// `sync`, fsync of the directory).
    func write(_ sequence: UInt64, bytes: [UInt8]) throws(SpoolError) {
        let finalPath = path(sequence)
        let tempPath = finalPath + Self.tempSuffix
        do throws(SpoolError) {
            try Self.writeFile(tempPath, bytes: bytes, sync: sync)
            guard rename(tempPath, finalPath) == 0 else { throw SpoolError(code: .io, message: "rename \(tempPath): \(errnoText())") }
        } catch {
            unlink(tempPath)
            throw error
        }
        if sync {
            // The record is complete and visible to any later process either way; only its
            // durability across a machine crash would be in doubt.
            let handle = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if handle >= 0 {
                fsync(handle)
                close(handle)
            }
        }
    }

    struct ReadFailure: Error {
        var errno: Int32
        var message: String
    }

    func read(_ sequence: UInt64) -> Result<[UInt8], ReadFailure> {
        Self.readWhole(path(sequence))
    }

    static func readWhole(_ path: String) -> Result<[UInt8], ReadFailure> {
        let handle = open(path, O_RDONLY | O_CLOEXEC)
        guard handle >= 0 else {
            let code = errno
            return .failure(ReadFailure(errno: code, message: "open \(path): \(errnoText(code))"))
        }
        defer { close(handle) }
        var info = stat()
        guard fstat(handle, &info) == 0 else {
            let code = errno
            return .failure(ReadFailure(errno: code, message: "fstat \(path): \(errnoText(code))"))
        }
        let size = Int(info.st_size)
        var readError: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var offset = 0
            while offset < size {
                let count = Glibc.read(handle, buffer.baseAddress! + offset, size - offset)
                if count < 0 {
                    if errno == EINTR { continue }
                    readError = errno
                    break
                }
                if count == 0 { break }  // shrank under us; the checksum will tell
                offset += count
            }
            initialized = offset
        }
        if readError != 0 { return .failure(ReadFailure(errno: readError, message: "read \(path): \(errnoText(readError))")) }
        return .success(bytes)
    }

    /// Deletes a record file; an error text, or nil (also when it was already gone).
    @discardableResult
    func remove(_ sequence: UInt64) -> String? {
        unlink(path(sequence)) == 0 || errno == ENOENT ? nil : errnoText()
    }

    // MARK: POSIX helpers

    func errnoText(_ code: Int32 = errno) -> String { Self.errnoText(code) }

    static func errnoText(_ code: Int32 = errno) -> String {
        if let text = strerror(code) { return String(cString: text) + " (errno \(code))" }
        return "errno \(code)"
    }

    /// mkdir -p with mode 0700 for the directories it creates.
    static func makeDirectories(_ path: String) throws(SpoolError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            if mkdir(prefix, 0o700) != 0, errno != EEXIST {
                throw SpoolError(code: .unusableDirectory, message: "cannot create \(prefix): \(errnoText())")
            }
        }
        var info = stat()
        guard stat(path, &info) == 0 else { throw SpoolError(code: .unusableDirectory, message: "cannot stat \(path): \(errnoText())") }
        guard (info.st_mode & S_IFMT) == S_IFDIR else { throw SpoolError(code: .unusableDirectory, message: "\(path) is not a directory") }
    }

    /// Creates and deletes a probe file: the honest answer to "can we write here?"
    /// (access(2) says yes to root even on a read-only mount).
    static func probeWritable(_ directory: String) throws(SpoolError) {
        let probe = directory + "/.probe" + tempSuffix
        let handle = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard handle >= 0 else { throw SpoolError(code: .unusableDirectory, message: "cannot write in \(directory): \(errnoText())") }
        close(handle)
        unlink(probe)
    }

    /// Writes `bytes` to a new file at `path` (mode 0600), optionally fsyncs it.
    static func writeFile(_ path: String, bytes: [UInt8], sync: Bool) throws(SpoolError) {
        let handle = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard handle >= 0 else { throw SpoolError(code: .io, message: "open \(path): \(errnoText())") }
        var failure: String? = nil
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let count = Glibc.write(handle, raw.baseAddress! + offset, raw.count - offset)
                if count < 0 {
                    if errno == EINTR { continue }
                    failure = "write \(path): \(errnoText())"
                    return
                }
                offset += count
            }
        }
        if failure == nil, sync, fsync(handle) != 0 { failure = "fsync \(path): \(errnoText())" }
        // close can report a deferred write error (NFS, quota); don't ignore it.
        if close(handle) != 0, failure == nil, errno != EINTR { failure = "close \(path): \(errnoText())" }
        if let failure { throw SpoolError(code: .io, message: failure) }
    }
}
