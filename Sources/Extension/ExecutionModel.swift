/// How Lambda runs the function, from `AWS_LAMBDA_INITIALIZATION_TYPE`. Each model changes
/// what the extension may register for and when its uploads can leave.
public enum ExecutionModel: String, Sendable, CaseIterable {
    /// Initialized on the first request; frozen between invocations.
    case onDemand = "on-demand"
    /// Initialized long before the first invoke, then frozen until it.
    case provisionedConcurrency = "provisioned-concurrency"
    /// Initialized once at publish; every environment is a restored copy of that snapshot.
    case snapStart = "snap-start"
    /// Lambda Managed Instances: never frozen, concurrent invocations, and external
    /// extensions may register for SHUTDOWN only.
    case managedInstances = "lambda-managed-instances"

    /// The model for a variable's value; unknown values are on-demand, with a note.
    static func parse(_ value: String?) -> (model: ExecutionModel, note: String?) {
        guard let value, !value.isEmpty else { return (.onDemand, nil) }
        if let model = ExecutionModel(rawValue: value) { return (model, nil) }
        return (.onDemand, "AWS_LAMBDA_INITIALIZATION_TYPE '\(value)' is not a known execution model: running as on-demand")
    }

    /// Whether INVOKE events reach external extensions at all.
    public var deliversInvokeEvents: Bool { self != .managedInstances }

    /// Whether what is accepted during init should go out before the first `/event/next`:
    /// the environment is then frozen for long (provisioned concurrency) or snapshotted
    /// (SnapStart).
    public var drainsBeforeFirstEvent: Bool { self == .provisionedConcurrency || self == .snapStart }

    /// Telemetry API schema: Managed Instances accept only 2025-01-29; elsewhere the
    /// older one, which every region accepts.
    public var telemetrySchemaVersion: String { self == .managedInstances ? "2025-01-29" : "2022-12-13" }
}
