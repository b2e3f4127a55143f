import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// What the remote answered.
public struct UpstreamResponse: Sendable {
    public var status: HTTPResponseStatus
    /// The start of the response body, for log lines about failures.
    public var bodyExcerpt: String
    /// The `Retry-After` header, if any.
    public var retryAfter: String?

    public init(status: HTTPResponseStatus, bodyExcerpt: String = "", retryAfter: String? = nil) {
        self.status = status
        self.bodyExcerpt = bodyExcerpt
        self.retryAfter = retryAfter
    }
}

/// Why an attempt got no answer; uploaders throw these so the retry policy can tell a
/// dead connection (retry at once, fresh) from a slow remote (back off).
public enum UploadFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case timeout(String)
    case connection(String)

    public var description: String {
        switch self {
        case .timeout(let detail): "timeout: \(detail)"
        case .connection(let detail): "connection failed: \(detail)"
        }
    }
}

/// The upstream network boundary; tests swap in fakes.
public protocol Uploader: Sendable {
    /// Sends one request; throws `UploadFailure` (or CancellationError) when there is no
    /// answer, returns any status otherwise.
    func send(_ request: UpstreamRequest) async throws -> UpstreamResponse
}

/// The real uploader: one async-http-client for the process, on the relay's event loops.
public struct HTTPClientUploader: Uploader {
    /// Failure bodies are read only this far: enough to log, never a memory risk.
    static let excerptLimit = 512

    let client: HTTPClient
    let timeout: Duration

    public init(client: HTTPClient, timeout: Duration) {
        self.client = client
        self.timeout = timeout
    }

    /// Client settings for relaying: no redirects (a redirect would re-send credentials
    /// elsewhere), no decompression (bodies pass through untouched).
    public static func clientConfiguration(timeout: Duration, workers: Int) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.timeout = .init(connect: .init(timeout), read: .init(timeout))
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(1, workers)
        return configuration
    }

    public func send(_ request: UpstreamRequest) async throws -> UpstreamResponse {
        do {
            return try await attempt(request)
        } catch let error as HTTPClientError where [.deadlineExceeded, .readTimeout, .connectTimeout].contains(error) {
            throw UploadFailure.timeout("\(error)")
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as HTTPClientError where error == .cancelled {
            throw CancellationError()
        } catch let failure as UploadFailure {
            throw failure
        } catch {
            throw UploadFailure.connection("\(error)")
        }
    }

    private func attempt(_ request: UpstreamRequest) async throws -> UpstreamResponse {
        var outgoing = HTTPClientRequest(url: request.url)
        outgoing.method = request.method
        outgoing.headers = request.headers
        outgoing.body = .bytes(request.body)
        let response = try await client.execute(outgoing, timeout: .init(timeout))
        if (200..<300).contains(response.status.code) {
            // Drain so the connection can be reused.
            for try await _ in response.body {}
            return UpstreamResponse(status: response.status)
        }
        var excerpt = ByteBuffer()
        for try await part in response.body where excerpt.readableBytes < Self.excerptLimit {
            var part = part
            excerpt.writeBuffer(&part)
        }
        let text = String(buffer: excerpt.getSlice(at: excerpt.readerIndex, length: min(excerpt.readableBytes, Self.excerptLimit)) ?? excerpt)
        return UpstreamResponse(status: response.status, bodyExcerpt: text, retryAfter: response.headers.first(name: "retry-after"))
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
