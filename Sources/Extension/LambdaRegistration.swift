import Logging
import RelayCore

/// Registration with the Extensions API for what the execution model allows. Managed
/// Instances take SHUTDOWN only; anywhere an INVOKE registration is refused as
/// `Extension.InvalidEventType`, the extension registers again for SHUTDOWN only and
/// relays in the background: the refusal never fails the function's init.
struct LambdaRegistration: Sendable {
    var registration: Registration
    var events: [String]
    /// The flush strategy that can work with these events.
    var strategy: FlushStrategy

    static func register(
        client: any ExtensionsAPIClient, name: String, model: ExecutionModel, strategy: FlushStrategy, logger: Logger
    ) async throws(ExtensionError) -> LambdaRegistration {
        let shutdownOnly = ["SHUTDOWN"]
        guard model.deliversInvokeEvents else {
            return LambdaRegistration(
                registration: try await client.register(name: name, events: shutdownOnly), events: shutdownOnly, strategy: .background)
        }
        let events = ["INVOKE", "SHUTDOWN"]
        do {
            return LambdaRegistration(registration: try await client.register(name: name, events: events), events: events, strategy: strategy)
        } catch {
            guard error.code == .invalidEventType else { throw error }
            logger.warning(
                "The Extensions API refused INVOKE events: registered for SHUTDOWN only, uploads go out in the background",
                metadata: [LogKey.error: "\(error.message)", LogKey.flushStrategy: "background", LogKey.executionModel: "\(model.rawValue)"])
            return LambdaRegistration(
                registration: try await client.register(name: name, events: shutdownOnly), events: shutdownOnly, strategy: .background)
        }
    }
}
