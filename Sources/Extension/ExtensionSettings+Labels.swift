import GoCompatibility
import RelayCore

/// A label PYROSCOPE_LAMBDA_LABELS can add to every profile. Names follow OpenTelemetry's
/// FaaS, cloud and host semantic conventions with `.` as `_` (as Pyroscope sanitizes label
/// names), values too (`faas.max_memory` is in bytes, `host.arch` is `amd64` or `arm64`);
/// the execution model has no OpenTelemetry name and is named after its AWS variable.
public enum LambdaLabelKind: String, Sendable, CaseIterable {
    case faasName = "faas_name"
    case faasVersion = "faas_version"
    case cloudProvider = "cloud_provider"
    case cloudPlatform = "cloud_platform"
    case cloudRegion = "cloud_region"
    case hostArch = "host_arch"
    case faasMaxMemory = "faas_max_memory"
    case initializationType = "aws_lambda_initialization_type"
    /// The log stream: one per execution environment, so one series per environment. Not
    /// in the default set: series multiply with every cold start (the session id of
    /// legacy uploads already tells environments apart).
    case faasInstance = "faas_instance"

    /// What `PYROSCOPE_LAMBDA_LABELS=true` adds.
    public static let defaultSet = allCases.filter { $0 != .faasInstance }

    /// The OpenTelemetry resource attribute in OTLP profiles: the name with `.` for `_`
    /// (Pyroscope shows `faas.name` as `faas_name`, so a label reads the same whichever
    /// protocol the profiler uses); the execution model keeps its AWS variable's words.
    public var resourceAttribute: LambdaLabel.ResourceAttribute {
        switch self {
        case .initializationType: LambdaLabel.ResourceAttribute(key: "aws.lambda.initialization_type")
        case .faasMaxMemory: LambdaLabel.ResourceAttribute(key: "faas.max_memory", isInteger: true)
        default: LambdaLabel.ResourceAttribute(key: String(rawValue.map { $0 == "_" ? "." : $0 }))
        }
    }

    /// `host.arch` of the build, as OpenTelemetry spells it.
    public static var buildArchitecture: String? {
        #if arch(x86_64)
            "amd64"
        #elseif arch(arm64)
            "arm64"
        #else
            nil
        #endif
    }
}

extension ExtensionSettings {
    /// PYROSCOPE_LAMBDA_LABELS: unset or false, none (uploads pass as today); `true`, the
    /// default set; a comma list, those labels. A label whose variable is unset (outside
    /// Lambda) is left out.
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, the function's memory in MB, when it is one.
    static func memoryMegabytes(_ reader: EnvironmentReader) -> Int? {
        reader.string("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").flatMap(GoParsing.parseInt).flatMap { $0 > 0 && $0 < 1 << 20 ? $0 : nil }
    }

    static func lambdaLabels(_ reader: inout EnvironmentReader, architecture: String? = LambdaLabelKind.buildArchitecture) -> LambdaLabels {
        guard let text = reader.string("PYROSCOPE_LAMBDA_LABELS") else { return .none }
        var kinds: [LambdaLabelKind] = []
        if let enabled = GoParsing.parseBool(text) {
            guard enabled else { return .none }
            kinds = LambdaLabelKind.defaultSet
        } else {
            var unknown: [String] = []
            for item in text.split(separator: ",") {
                let name = String(item).trimmingGoSpace()
                if name.isEmpty { continue }
                if let kind = LambdaLabelKind(rawValue: name.lowercased()) {
                    if !kinds.contains(kind) { kinds.append(kind) }
                } else {
                    unknown.append(name)
                }
            }
            if !unknown.isEmpty {
                reader.warnings.append(
                    SettingsWarning(
                        variable: "PYROSCOPE_LAMBDA_LABELS", value: text, fallback: kinds.map(\.rawValue).joined(separator: ","),
                        reason: "unknown label \(unknown.joined(separator: ", ")): use true, or a comma list of "
                            + LambdaLabelKind.allCases.map(\.rawValue).joined(separator: ", ")))
            }
        }
        // Every variable is read here, so the README's table and `variables` list them.
        let function = reader.string("AWS_LAMBDA_FUNCTION_NAME")
        let version = reader.string("AWS_LAMBDA_FUNCTION_VERSION")
        let region = reader.string("AWS_REGION")
        let memory = memoryMegabytes(reader).map { megabytes in String(megabytes << 20) }
        let initialization = reader.string("AWS_LAMBDA_INITIALIZATION_TYPE")
        let logStream = reader.string("AWS_LAMBDA_LOG_STREAM_NAME")
        var labels: [LambdaLabel] = []
        for kind in kinds {
            let value: String? =
                switch kind {
                case .faasName: function
                case .faasVersion: version
                case .cloudProvider: "aws"
                case .cloudPlatform: "aws_lambda"
                case .cloudRegion: region
                case .hostArch: architecture
                case .faasMaxMemory: memory
                case .initializationType: initialization
                case .faasInstance: logStream
                }
            if let value { labels.append(LambdaLabel(name: kind.rawValue, value: value, attribute: kind.resourceAttribute)) }
        }
        return LambdaLabels(sanitizing: labels)
    }
}
