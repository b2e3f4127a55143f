import Logging

#if canImport(Glibc)
    import Glibc
#endif

extension UploadJournal {
    /// At start, before the spool is opened: each upload a journal segment holds without an
    /// end becomes a spool record with the same sequence (replayed from there as usual),
    /// then the segments are deleted. Returns how many uploads were recovered.
    static func recover(into files: SpoolFiles, logger: Logger) -> Int {
        var recovered = 0
        for number in segmentNumbers(in: files.directory) {
            let path = path(files.directory, number)
            guard case .success(let bytes) = SpoolFiles.readWhole(path) else { continue }
            let (entries, torn) = parse(bytes)
            if torn {
                // Expected when the process died mid-write: only the last frame is lost.
                logger.debug("spool: journal segment ends in a partial frame", metadata: [LogKey.file: "\(path)"])
            }
            for (sequence, record) in entries.sorted(by: { $0.key < $1.key }) {
                guard case .success = SpoolRecordCodec.decode(record) else { continue }
                do {
                    try files.write(sequence, bytes: record)
                    recovered += 1
                } catch {
                    logger.error("spool: cannot keep an upload recovered from the journal", metadata: [LogKey.error: "\(error.message)"])
                }
            }
            unlink(path)
        }
        if recovered > 0 {
            logger.info("Recovered acknowledged uploads from the journal of an earlier run", metadata: [LogKey.count: .stringConvertible(recovered)])
        }
        return recovered
    }

    /// The entries of a segment that have no end, and whether it ended in a partial frame
    /// (rather than in the zeros after the last frame).
    static func parse(_ bytes: [UInt8]) -> (entries: [UInt64: [UInt8]], torn: Bool) {
        var live: [UInt64: [UInt8]] = [:]
        var position = 0
        func integer<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
            var value: T = 0
            for index in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + index]) << (8 * index) }
            return value
        }
        while position < bytes.count, bytes[position] != 0 {
            guard bytes[position] == UInt8(ascii: "E"), bytes.count - position >= headerSize else { return (live, true) }
            let ended = bytes[position + 1] != 0
            let sequence = integer(UInt64.self, at: position + 2)
            let length = Int(integer(UInt32.self, at: position + 10))
            guard bytes.count - position - headerSize >= length else { return (live, true) }
            let record = Array(bytes[(position + headerSize)..<(position + headerSize + length)])
            // A frame cut by a kill: its record's CRC fails, and nothing after it was written.
            guard case .success = SpoolRecordCodec.decode(record) else { return (live, true) }
            if !ended { live[sequence] = record }
            position += headerSize + length
        }
        return (live, false)
    }
}
