import NIOCore
import NIOHTTP1
import RelayCore

/// One HTTP exchange with AWS (or Lambda's credentials endpoint).
public struct AWSHTTPRequest: Sendable {
    public var method: HTTPMethod
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: HTTPMethod, url: String, headers: [(name: String, value: String)], body: [UInt8] = []) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

public struct AWSHTTPResponse: Sendable {
    public var status: UInt
    public var body: [UInt8]

    public init(status: UInt, body: [UInt8]) {
        self.status = status
        self.body = body
    }
}

/// The network boundary of the secret fetch; tests may swap in fakes.
public protocol AWSTransport: Sendable {
    /// Throws when there is no answer within `timeout`; returns any status otherwise.
    func send(_ request: AWSHTTPRequest, timeout: Duration) async throws -> AWSHTTPResponse
}

/// The real transport: the relay's `HTTP1Client` on the relay's event loops, with the proxy
/// and trust roots of the settings; hosts that `NO_PROXY`, loopback or the Lambda API
/// exclude go direct (the client decides per destination).
public final class HTTPClientAWSTransport: AWSTransport {
    private let client: HTTP1Client
    /// Answers larger than this are refused (a secret is at most 64 KiB).
    static let maxResponseBytes = 1 << 20

    public init(eventLoopGroup: any EventLoopGroup, network: NetworkConfiguration) {
        // The calls (credentials, GetSecretValue, GetParameter) may be repeated: one on a
        // connection found dead is made once more on a fresh one.
        client = HTTP1Client(
            eventLoopGroup: eventLoopGroup, configuration: .init(maxIdleConnectionsPerOrigin: 1, retriesDeadPooledConnection: true, network: network))
    }

    public func send(_ request: AWSHTTPRequest, timeout: Duration) async throws -> AWSHTTPResponse {
        var outgoing = HTTP1Request(method: request.method, url: request.url)
        for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
        if !request.body.isEmpty { outgoing.body = ByteBuffer(bytes: request.body) }
        let response = try await client.executeWhole(outgoing, deadline: .now() + TimeAmount(timeout), maxBodyBytes: Self.maxResponseBytes)
        return AWSHTTPResponse(status: response.status.code, body: Array(buffer: response.body))
    }

    public func shutdown() async { await client.shutdown() }
}
