import Logging
import NIOConcurrencyHelpers
import RelayTestSupport
import Testing

@testable import LambdaExtension
@testable import RelayCore

/// What each Lambda execution model changes: registration, flush strategy, restore handling.
@Suite struct ExecutionModelTests {
    static let logger = Logger(label: "model-test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// An Extensions API whose `/register` answers from a closure.
    final class RegisteringClient: ExtensionsAPIClient {
        let attempts = NIOLockedValueBox<[[String]]>([])
        let answer: @Sendable ([String]) throws(ExtensionError) -> Registration

        init(answer: @escaping @Sendable ([String]) throws(ExtensionError) -> Registration) { self.answer = answer }

        func register(name: String, events: [String]) async throws(ExtensionError) -> Registration {
            attempts.withLockedValue { $0.append(events) }
            return try answer(events)
        }
        func next() async throws(ExtensionError) -> ExtensionEvent { throw ExtensionError(.unexpectedEvent, "not scripted") }
        func subscribeTelemetry(destinationURI: String, schemaVersion: String) async throws(ExtensionError) {}
        func reportInitError(_ error: ExtensionError) async {}
        func reportExitError(_ error: ExtensionError) async {}
    }

    static let registration = Registration(functionName: "f", functionVersion: "1", handler: nil, accountId: nil)
    static let lmiRefusal = ExtensionError(
        .invalidEventType, #"register answered 403: {"errorType":"Extension.InvalidEventType","errorMessage":"INVOKE: ErrorInvalidEventType"}"#)

    /// Refuses INVOKE the way Lambda Managed Instances do.
    static func refusingInvoke() -> RegisteringClient {
        RegisteringClient { events throws(ExtensionError) in
            if events.contains("INVOKE") { throw lmiRefusal }
            return registration
        }
    }

    @Test func settingsReadTheModelAndSayWhenItIsUnknown() {
        #expect(ExtensionSettings(environment: [:]).executionModel == .onDemand)
        for model in ExecutionModel.allCases {
            #expect(ExtensionSettings(environment: ["AWS_LAMBDA_INITIALIZATION_TYPE": model.rawValue]).executionModel == model)
        }
        let unknown = ExtensionSettings(environment: ["AWS_LAMBDA_INITIALIZATION_TYPE": "warp-speed"])
        #expect(unknown.executionModel == .onDemand && unknown.warnings.isEmpty)
        #expect(unknown.notes.count == 1 && unknown.notes[0].contains("warp-speed"))
    }

    @Test(arguments: [("PYROSCOPE_FLUSH_STRATEGY", "end"), ("PYROSCOPE_FLUSH_STRATEGY", "invoke"), ("PYROSCOPE_FLUSH_ON_INVOKE", "true")])
    func managedInstancesFallBackToBackgroundWithOneWarningNamingTheSetting(variable: String, value: String) {
        let settings = ExtensionSettings(environment: ["AWS_LAMBDA_INITIALIZATION_TYPE": "lambda-managed-instances", variable: value])
        #expect(settings.flushStrategy == .background)
        let warnings = settings.warnings.filter { $0.variable == variable }
        #expect(warnings.count == 1)
        #expect(warnings.first?.fallback == "background" && warnings.first?.reason?.contains("Managed Instances") == true)
    }

    @Test func managedInstancesRegisterForShutdownOnly() async throws {
        let client = Self.refusingInvoke()
        let registered = try await LambdaRegistration.register(client: client, name: "x", model: .managedInstances, strategy: .end, logger: Self.logger)
        #expect(client.attempts.withLockedValue { $0 } == [["SHUTDOWN"]])
        #expect(registered.events == ["SHUTDOWN"] && registered.strategy == .background)
    }

    @Test(arguments: ExecutionModel.allCases.filter(\.deliversInvokeEvents))
    func anInvokeRefusalRegistersAgainForShutdownInAnyModel(model: ExecutionModel) async throws {
        let client = Self.refusingInvoke()
        let registered = try await LambdaRegistration.register(client: client, name: "x", model: model, strategy: .end, logger: Self.logger)
        #expect(client.attempts.withLockedValue { $0 } == [["INVOKE", "SHUTDOWN"], ["SHUTDOWN"]])
        #expect(registered.events == ["SHUTDOWN"] && registered.strategy == .background)
    }

    @Test func otherRefusalsAreStillErrors() async {
        let client = RegisteringClient { _ throws(ExtensionError) in throw ExtensionError(.registrationFailed, "register answered 500") }
        await #expect(throws: ExtensionError.self) {
            _ = try await LambdaRegistration.register(client: client, name: "x", model: .onDemand, strategy: .background, logger: Self.logger)
        }
        #expect(client.attempts.withLockedValue { $0 }.count == 1)
    }

    @Test func telemetrySchemaIsTheOneEachModelAccepts() {
        #expect(ExecutionModel.managedInstances.telemetrySchemaVersion == "2025-01-29")
        #expect(ExecutionModel.onDemand.telemetrySchemaVersion == "2022-12-13")
    }
}
