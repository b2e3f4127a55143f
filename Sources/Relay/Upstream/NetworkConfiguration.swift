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

    /// The proxy requests to `remote` go through, if any.
    public func proxy(reaching remote: RemoteEndpoint?) -> ProxyServer? {
        guard let remote, let target = URLTarget(remote.origin) else { return nil }
        return proxy.proxy(for: target)
    }
}
