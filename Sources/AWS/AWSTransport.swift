import AsyncHTTPClient
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

/// The real transport: async-http-client on the relay's event loops, with the proxy and
/// trust roots of the settings. The proxy is decided per destination host when the
/// transport is made (there are at most three: the credentials endpoint, Secrets Manager
/// and SSM); hosts that `NO_PROXY`, loopback or the Lambda API exclude go direct.
public final class HTTPClientAWSTransport: AWSTransport {
    private let direct: HTTPClient
    private let proxied: HTTPClient?
    private let proxiedHosts: Set<String>
    /// Answers larger than this are refused (a secret is at most 64 KiB).
    static let maxResponseBytes = 1 << 20

    /// - Parameter destinations: every URL this transport will be asked for.
    public init(eventLoopGroup: any EventLoopGroup, network: NetworkConfiguration, destinations: [String]) {
        func configuration(proxy: HTTPClient.Configuration.Proxy?) -> HTTPClient.Configuration {
            var configuration = HTTPClient.Configuration()
            configuration.redirectConfiguration = .disallow
            configuration.connectionPool.retryConnectionEstablishment = false
            configuration.tracing.tracer = nil
            configuration.tlsConfiguration = network.trust.tlsConfiguration
            configuration.proxy = proxy
            return configuration
        }
        var proxy: HTTPClient.Configuration.Proxy?
        var hosts = Set<String>()
        for destination in destinations {
            guard let target = URLTarget(destination), let chosen = network.proxy.proxy(for: target) else { continue }
            // One proxy per scheme; both AWS APIs are HTTPS, so in practice there is one.
            proxy = chosen.clientProxy
            hosts.insert(target.host)
        }
        direct = HTTPClient(eventLoopGroup: eventLoopGroup, configuration: configuration(proxy: nil))
        proxied = proxy.map { HTTPClient(eventLoopGroup: eventLoopGroup, configuration: configuration(proxy: $0)) }
        proxiedHosts = hosts
    }

    public func send(_ request: AWSHTTPRequest, timeout: Duration) async throws -> AWSHTTPResponse {
        var outgoing = HTTPClientRequest(url: request.url)
        outgoing.method = request.method
        for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
        if !request.body.isEmpty { outgoing.body = .bytes(ByteBuffer(bytes: request.body)) }
        let host = URLTarget(request.url)?.host ?? ""
        let client = proxiedHosts.contains(host) ? (proxied ?? direct) : direct
        let response = try await client.execute(outgoing, timeout: TimeAmount(timeout))
        let body = try await response.body.collect(upTo: Self.maxResponseBytes)
        return AWSHTTPResponse(status: response.status.code, body: Array(buffer: body))
    }

    public func shutdown() async {
        try? await direct.shutdown()
        try? await proxied?.shutdown()
    }
}
