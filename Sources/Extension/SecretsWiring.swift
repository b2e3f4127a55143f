import Logging
import NIOCore
import RelayAWS
import RelayCore
import RelayLogging

/// The upstream credential kept in AWS, wired from settings: the AWS transport, the
/// credentials provider, the fetcher and the `UpstreamSecret` service, with fetched values
/// added to the log redactions.
struct SecretsWiring {
    /// For the forwarder; nil when the credentials are plain settings.
    let source: (any UpstreamCredentialSource)?
    /// The background service (retries while the secret is missing).
    let secret: UpstreamSecret?
    private let transport: HTTPClientAWSTransport?

    private let startBudget: Duration

    /// Builds the pieces; nothing is fetched yet (`fetchAtStart`).
    static func make(settings: ExtensionSettings, group: any EventLoopGroup, logger: Logger) -> SecretsWiring {
        let secrets = settings.secrets
        guard let plan = secrets.plan else {
            return SecretsWiring(
                source: secrets.unusable ? UnusableCredentialSource() : nil, secret: nil, transport: nil, startBudget: secrets.startBudget)
        }
        var logger = logger
        logger[metadataKey: LogKey.comp] = "secrets"
        let redactions = settings.log.redactions
        let learned: @Sendable ([String]) -> Void = { redactions.add($0) }
        let transport = HTTPClientAWSTransport(eventLoopGroup: group, network: settings.network)
        let credentials: any AWSCredentialsProvider
        switch secrets.awsCredentials {
        case .environment(let keys): credentials = StaticCredentialsProvider(keys)
        case .container(let uri, let token):
            credentials = ContainerCredentialsProvider(uri: uri, authorizationToken: token, transport: transport, learned: learned)
        case .none: credentials = MissingCredentialsProvider()
        }
        let fetcher = AWSSecretFetcher(
            transport: transport, credentials: credentials, endpoints: secrets.endpoints, now: { unixMilliseconds() / 1000 })
        let secret = UpstreamSecret(plan: plan, fetcher: fetcher, learned: learned, logger: logger)
        return SecretsWiring(source: secret, secret: secret, transport: transport, startBudget: secrets.startBudget)
    }

    /// The start-up fetch, bounded by `PYROSCOPE_*_SECRET_ARN`'s start budget: init never
    /// fails for it, uploads wait for the value if it is not there in time.
    func fetchAtStart() async {
        await secret?.fetchAtStart(within: startBudget)
    }

    func shutdown() async { await transport?.shutdown() }
}
