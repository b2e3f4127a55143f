/// An error in the Lambda lifecycle, with the `Extension.*` type Lambda records for it.
public struct ExtensionError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The `Category.Reason` sent as `Lambda-Extension-Function-Error-Type`.
        public let functionErrorType: String
        public var description: String { functionErrorType }

        public static let registrationFailed = Code(functionErrorType: "Extension.RegistrationFailed")
        /// Lambda refused an event type (Managed Instances refuse INVOKE for external extensions).
        public static let invalidEventType = Code(functionErrorType: "Extension.InvalidEventType")
        public static let portInUse = Code(functionErrorType: "Extension.PortInUse")
        public static let telemetrySubscriptionFailed = Code(functionErrorType: "Extension.TelemetrySubscriptionFailed")
        public static let unexpectedEvent = Code(functionErrorType: "Extension.UnexpectedEvent")
        public static let apiUnavailable = Code(functionErrorType: "Extension.APIUnavailable")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
