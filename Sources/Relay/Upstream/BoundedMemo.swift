import Synchronization

/// Remembers the results of a pure per-request computation whose inputs repeat (every
/// push goes to one URL). Emptied when full, so it stays bounded whatever clients send.
final class BoundedMemo<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    let capacity: Int
    private let table = Mutex<[Key: Value]>([:])

    init(capacity: Int = 64) {
        self.capacity = max(1, capacity)
    }

    func value(for key: Key, _ make: (Key) throws -> Value) rethrows -> Value {
        if let value = table.withLock({ $0[key] }) { return value }
        let value = try make(key)
        table.withLock { table in
            if table.count >= capacity { table.removeAll(keepingCapacity: true) }
            table[key] = value
        }
        return value
    }
}
