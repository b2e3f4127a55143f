/// One spooled upload as it is kept on disk: the original request and when it arrived.
public struct SpoolRecord: Sendable, Equatable {
    public var method: String
    /// The raw request target, e.g. "/ingest?name=app".
    public var target: String
    /// Request headers, in order, repeats kept.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Wall-clock arrival: the monotonic clock does not survive a restart.
    public var receivedAtUnixMs: Int64

    public init(method: String, target: String, headers: [(name: String, value: String)], body: [UInt8], receivedAtUnixMs: Int64) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.receivedAtUnixMs = receivedAtUnixMs
    }

    public static func == (lhs: SpoolRecord, rhs: SpoolRecord) -> Bool {
        lhs.method == rhs.method && lhs.target == rhs.target && lhs.receivedAtUnixMs == rhs.receivedAtUnixMs
            && lhs.body == rhs.body && lhs.headers.count == rhs.headers.count
            && zip(lhs.headers, rhs.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}

public struct SpoolError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// The record does not fit under the spool's byte limit.
        case full
        /// A file operation failed (the spool left no partial record behind).
        case io
        /// The spool directory cannot be created, opened or written.
        case unusableDirectory
        /// Another process holds the spool directory.
        case inUse
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "spool error (\(code)): \(message)" }
}
