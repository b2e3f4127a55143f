import Logging
import Synchronization

/// Log lines collected in memory, for tests that check what the relay says.
public final class LogRecording: Sendable {
    public struct Line: Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]

        /// Message and metadata as one text, for "never contains" checks.
        public var text: String { ([message] + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(separator: " ") }
    }

    private let lines = Watched<[Line]>([])

    public init() {}

    public var all: [Line] { lines.value }

    func append(_ line: Line) { lines.withLock { $0.append(line) } }

    /// Returns once `count` lines matching `predicate` were logged; `WaitTimeout` after `timeout`.
    public func waitForLines(_ count: Int, timeout: Duration = .seconds(10), _ predicate: @escaping @Sendable (Line) -> Bool) async throws {
        try await lines.wait("\(count) matching log line(s)", timeout: timeout) { $0.lazy.filter(predicate).count >= count }
    }

    /// A logger at `level` (trace: everything) that records here.
    public func logger(level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: "recording") { _ in RecordingLogHandler(recording: self) }
        logger.logLevel = level
        return logger
    }
}

struct RecordingLogHandler: LogHandler {
    let recording: LogRecording
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        recording.append(.init(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
    }
}
