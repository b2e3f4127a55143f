import NIOConcurrencyHelpers
import RelayCore

/// An upstream that answers from a script, in order (the last answer repeats), and
/// records what it was sent: for retry tests that need no network and no real time.
public final class ScriptedUploader: Uploader {
    public enum Answer: Sendable {
        case status(UInt, retryAfter: String? = nil)
        case failure(UploadFailure)
    }

    private let script: NIOLockedValueBox<[Answer]>
    private let sent = NIOLockedValueBox<[UpstreamRequest]>([])

    public init(_ script: [Answer]) {
        precondition(!script.isEmpty, "a script needs at least one answer")
        self.script = NIOLockedValueBox(script)
    }

    /// Requests sent so far.
    public var requests: [UpstreamRequest] { sent.withLockedValue { $0 } }

    public func send(_ request: UpstreamRequest) async throws -> UpstreamResponse {
        sent.withLockedValue { $0.append(request) }
        let answer = script.withLockedValue { script in script.count > 1 ? script.removeFirst() : script[0] }
        switch answer {
        case .status(let code, let retryAfter):
            return UpstreamResponse(status: .init(statusCode: Int(code)), retryAfter: retryAfter)
        case .failure(let failure):
            throw failure
        }
    }
}
