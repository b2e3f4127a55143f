import AsyncHTTPClient

/// How the relay reaches the network beyond loopback: the proxy and the trust roots, for the
/// upstream remote and for AWS alike.
public struct NetworkConfiguration: Sendable, Equatable {
    public var proxy: ProxyConfiguration
    public var trust: TrustConfiguration

    public init(proxy: ProxyConfiguration = .direct, trust: TrustConfiguration = .system) {
        self.proxy = proxy
        self.trust = trust
    }

    public static let direct = NetworkConfiguration()

    /// Sets the client's proxy (decided for `remote` now: the upstream client only ever
    /// reaches that host) and trust roots. Returns the proxy chosen, if any.
    @discardableResult
    public func apply(to configuration: inout HTTPClient.Configuration, reaching remote: RemoteEndpoint?) -> ProxyServer? {
        if let tls = trust.tlsConfiguration { configuration.tlsConfiguration = tls }
        guard let remote, let target = URLTarget(remote.origin), let server = proxy.proxy(for: target) else { return nil }
        configuration.proxy = server.clientProxy
        return server
    }
}
