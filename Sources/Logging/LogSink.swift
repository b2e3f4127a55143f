import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The shared destination of formatted lines. Handlers are value types copied into
/// every `Logger`; the sink is the one reference they share, so the lock lives here
/// (swift-log's "handler is a struct, destination is a reference type" pattern).
public final class LogSink: Sendable {
    enum Kind {
        case fileDescriptor(Int32)
        case memory
        case discarding
    }

    private let kind: Kind
    /// Serialises writes to the descriptor; holds the collected lines of a memory sink.
    private let state = Mutex<[String]>([])
    private let discarded = Atomic<Int>(0)

    private init(kind: Kind) {
        self.kind = kind
    }

    /// stderr, where logrus' standard logger writes.
    public static let standardError = LogSink(kind: .fileDescriptor(2))

    /// Any open descriptor; the sink does not close it.
    public static func fileDescriptor(_ fd: Int32) -> LogSink {
        LogSink(kind: .fileDescriptor(fd))
    }

    /// Collects whole lines in memory, for tests.
    public static func memory() -> LogSink {
        LogSink(kind: .memory)
    }

    /// Drops every line (counting bytes so the work cannot be optimised away), for
    /// benchmarks.
    public static func discarding() -> LogSink {
        LogSink(kind: .discarding)
    }

    /// The lines a memory sink collected, each with its trailing `\n`. Empty for the
    /// other kinds.
    public var lines: [String] {
        state.withLock { $0 }
    }

    /// Bytes a discarding sink has dropped.
    public var discardedBytes: Int {
        discarded.load(ordering: .relaxed)
    }

    /// Writes one complete line. For a descriptor this is one `write(2)` in the
    /// common case; a partial write continues where it stopped, EINTR retries, and
    /// EAGAIN (a non-blocking stderr) waits for the descriptor to drain. Any other
    /// error drops the rest of the line: there is nowhere left to report it.
    public func write(_ line: [UInt8]) {
        switch kind {
        case .discarding:
            discarded.add(line.count, ordering: .relaxed)
        case .memory:
            let text = String(decoding: line, as: UTF8.self)
            state.withLock { $0.append(text) }
        case .fileDescriptor(let fd):
            line.withUnsafeBytes { raw in
                state.withLock { _ in LogSink.writeAll(fd, raw) }
            }
        }
    }

    private static func writeAll(_ fd: Int32, _ raw: UnsafeRawBufferPointer) {
        guard var p = raw.baseAddress else { return }
        var remaining = raw.count
        while remaining > 0 {
            #if canImport(Glibc) || canImport(Musl)
                let n = Glibc.write(fd, p, remaining)
            #else
                let n = Darwin.write(fd, p, remaining)
            #endif
            if n > 0 {
                p += n
                remaining -= n
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&pfd, 1, 1000)
                continue
            }
            return
        }
    }
}
