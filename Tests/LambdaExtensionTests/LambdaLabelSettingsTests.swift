import RelayCore
import Testing

@testable import LambdaExtension

/// PYROSCOPE_LAMBDA_LABELS read from the environment Lambda gives the extension.
@Suite struct LambdaLabelSettingsTests {
    static let lambda = [
        "AWS_LAMBDA_FUNCTION_NAME": "checkout", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_REGION": "eu-west-1",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2025/01/31/[$LATEST]8f1c0d",
    ]

    static func labels(_ setting: String?, _ environment: [String: String] = lambda) -> (labels: [String], warnings: [SettingsWarning]) {
        var environment = environment
        environment["PYROSCOPE_LAMBDA_LABELS"] = setting
        let settings = ExtensionSettings(environment: environment)
        return (settings.relay.labels.labels.map(\.description), settings.warnings)
    }

    @Test(arguments: [nil, "", "false", "0", "FALSE"])
    func offByDefault(setting: String?) {
        #expect(Self.labels(setting).labels.isEmpty)
        #expect(Self.labels(setting).warnings.isEmpty)
    }

    @Test func trueAddsTheDefaultSetFromLambdasVariables() {
        #if arch(x86_64)
            let arch = "amd64"
        #else
            let arch = "arm64"
        #endif
        #expect(
            Self.labels("true").labels == [
                "faas_name=checkout", "faas_version=$LATEST", "cloud_provider=aws", "cloud_platform=aws_lambda", "cloud_region=eu-west-1",
                "host_arch=\(arch)", "faas_max_memory=1073741824", "aws_lambda_initialization_type=on-demand",
            ])
    }

    @Test func aListChoosesLabelsInItsOrderAndWarnsAboutUnknownNames() {
        let (labels, warnings) = Self.labels(" faas_instance, faas_version ,nope,faas_version")
        #expect(labels == ["faas_instance=2025/01/31/[$LATEST]8f1c0d", "faas_version=$LATEST"])
        #expect(warnings.count == 1)
        #expect(warnings.first?.variable == "PYROSCOPE_LAMBDA_LABELS")
        #expect(warnings.first?.description.contains("unknown label nope") == true)
    }

    @Test func outsideLambdaOnlyWhatIsKnownIsAdded() {
        #expect(Self.labels("faas_name,cloud_platform,faas_max_memory", [:]).labels == ["cloud_platform=aws_lambda"])
    }

    @Test func valuesAreSanitized() {
        var environment = Self.lambda
        environment["AWS_LAMBDA_FUNCTION_NAME"] = "a,b{c}=d"
        environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = "lots"
        #expect(Self.labels("faas_name,faas_max_memory", environment).labels == ["faas_name=a_b_c__d"])
    }
}
