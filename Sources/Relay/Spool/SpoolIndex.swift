import HeapModule

/// What the spool knows about its records: their sizes on disk, which are checked out to
/// a sender, and which may be handed out next (oldest first).
struct SpoolIndex: Sendable {
    private var entries: [UInt64: Entry] = [:]
    /// Sequences that may be checked out. A heap rather than a queue: concurrent appends
    /// finish out of order, and a record put back goes before newer ones.
    private var available = Heap<UInt64>()
    /// Disk of committed records plus reservations of appends in flight.
    private(set) var diskBytes = 0

    private struct Entry: Sendable {
        var diskBytes: Int
        var checkedOut: Bool
    }

    var count: Int { entries.count }

    /// Reserves disk for an append; false when it would exceed `limit`.
    mutating func reserve(_ bytes: Int, limit: Int) -> Bool {
        guard bytes <= limit - diskBytes else { return false }
        diskBytes += bytes
        return true
    }

    mutating func cancelReservation(_ bytes: Int) { diskBytes -= bytes }

    /// Adds a record; `reserved` says its disk was already reserved.
    mutating func insert(_ sequence: UInt64, diskBytes bytes: Int, reserved: Bool) {
        if !reserved { diskBytes += bytes }
        entries[sequence] = Entry(diskBytes: bytes, checkedOut: false)
        available.insert(sequence)
    }

    mutating func checkOutOldest() -> UInt64? {
        while let sequence = available.popMin() {
            // Sequences removed while available are skipped here, not searched for.
            guard let entry = entries[sequence], !entry.checkedOut else { continue }
            entries[sequence]!.checkedOut = true
            return sequence
        }
        return nil
    }

    /// Makes a checked-out record available again, in its place by age.
    mutating func checkIn(_ sequence: UInt64) {
        guard entries[sequence]?.checkedOut == true else { return }
        entries[sequence]!.checkedOut = false
        available.insert(sequence)
    }

    /// Forgets a record; false if it was unknown.
    @discardableResult
    mutating func remove(_ sequence: UInt64) -> Bool {
        guard let entry = entries.removeValue(forKey: sequence) else { return false }
        diskBytes -= entry.diskBytes
        if entries.isEmpty { available = Heap() }
        return true
    }
}
