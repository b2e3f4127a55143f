import Foundation
import RelayTestSupport
import Testing

@testable import RelayCore

/// Random OTLP profiles exports, protobuf and JSON, and label sets: every body the relay
/// rewrites, read back by OpenTelemetry's own classes, holds each resource's attributes
/// followed by the labels it lacked, and everything else exactly as it was. `LABELS_SEED`
/// replays a run.
@Suite struct OTLPLabelsPropertyTests {
    /// (Pyroscope name, OpenTelemetry key, integer): the relay's labels and some clients' keys.
    static let labelPool: [(String, String, Bool)] = [
        ("faas_name", "faas.name", false), ("faas_version", "faas.version", false), ("cloud_region", "cloud.region", false),
        ("host_arch", "host.arch", false), ("faas_max_memory", "faas.max_memory", true), ("env", "env", false), ("a", "a", false),
    ]
    static let keyPool = ["service.name", "faas.name", "faas_name", "faas.max_memory", "host.arch", "telemetry.sdk.language", "env", "a", "b"]

    static func text(_ random: inout SplitMix64) -> String {
        let alphabet = Array("abcXYZ019-_./$[]{},=\"' é€😀\\\n")
        return String((0..<Int.random(in: 0...12, using: &random)).map { _ in alphabet.randomElement(using: &random)! })
    }

    static func attribute(_ random: inout SplitMix64) -> OTLPBodies.Attribute {
        let key = Bool.random(using: &random) ? keyPool.randomElement(using: &random)! : "k\(Int.random(in: 0..<40, using: &random))"
        let value: OTLPBodies.Value =
            switch Int.random(in: 0..<3, using: &random) {
            case 0: .int(Int64.random(in: Int64.min...Int64.max, using: &random))
            case 1: .bool(Bool.random(using: &random))
            default: .string(text(&random))
            }
        return OTLPBodies.Attribute(key, value)
    }

    static func entries(_ random: inout SplitMix64) -> [OTLPBodies.ResourceProfiles] {
        (0..<Int.random(in: 0...3, using: &random)).map { _ in
            // Up to 32 attributes over up to two resource fields: some at the 30 limit or past it.
            let resources = (0..<Int.random(in: 0...2, using: &random)).map { _ in
                (0..<Int.random(in: 0...(Int.random(in: 0..<5, using: &random) == 0 ? 32 : 6), using: &random)).map { _ in attribute(&random) }
            }
            return OTLPBodies.ResourceProfiles(
                resources: resources, droppedAttributes: Bool.random(using: &random) ? 0 : UInt32.random(in: 1...9, using: &random),
                scopeNames: (0..<Int.random(in: 0...2, using: &random)).map { _ in text(&random) },
                schemaURL: Bool.random(using: &random) ? "" : "https://opentelemetry.io/schemas/1.\(Int.random(in: 0...40, using: &random)).0")
        }
    }

    static func labels(_ random: inout SplitMix64) -> LambdaLabels {
        LambdaLabels(
            sanitizing: (0..<Int.random(in: 1...7, using: &random)).map { _ in
                let (name, key, integer) = labelPool.randomElement(using: &random)!
                let value = integer && Bool.random(using: &random) ? String(Int.random(in: 1...10_240, using: &random) << 20) : text(&random)
                return LambdaLabel(name: name, value: value, attribute: .init(key: key, isInteger: integer))
            })
    }

    /// Each resource's attributes, then those of `labels` it lacks (by key or Pyroscope
    /// name), as long as the resource stays within 30 attributes.
    static func expected(_ resources: [[[String]]], adding labels: LambdaLabels) -> [[[String]]] {
        resources.map { attributes in
            var attributes = attributes
            let keys = Set(attributes.map { $0[0] })
            var room = OTLPProfilesLabels.maxAttributesPerResource - attributes.count
            for label in labels.labels where room > 0 && !keys.contains(label.attribute.key) && !keys.contains(label.name) {
                room -= 1
                attributes.append([label.attribute.key, label.attribute.isInteger ? "int_value" : "string_value", label.value])
            }
            return attributes
        }
    }

    @Test(arguments: ["protobuf", "json", "json-proto-names"])
    func rewrittenBodiesDecodeAsTheOriginalPlusTheLabels(encoding: String) async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["LABELS_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64.max)
        var random = SplitMix64(seed: seed)
        var cases: [(body: [UInt8], labels: LambdaLabels, rewritten: [UInt8]?)] = []
        for _ in 0..<300 {
            let entries = Self.entries(&random)
            let strings = (0..<Int.random(in: 0...3, using: &random)).map { _ in Self.text(&random) }
            let body =
                encoding == "protobuf"
                ? OTLPBodies.protobuf(entries, dictionaryStrings: strings)
                : OTLPBodies.json(entries, dictionaryStrings: strings, protoNames: encoding == "json-proto-names")
            let labels = Self.labels(&random)
            let rewritten = encoding == "protobuf" ? try OTLPProfilesLabels.add(labels.labels, to: body) : try OTLPJSONLabels.add(labels.labels, to: body)
            cases.append((body, labels, rewritten))
        }
        let decoded = try await OTLPBodies.decode(cases.flatMap { [$0.body, $0.rewritten ?? $0.body] })
        try #require(decoded.count == cases.count * 2)
        var rewrittenCount = 0
        for (index, testCase) in cases.enumerated() {
            let original = decoded[2 * index]
            let resources = try #require(original.resources, "seed \(seed) \(encoding): the test's own body \(index) decodes: \(original.error ?? "")")
            let expected = Self.expected(resources, adding: testCase.labels)
            if testCase.rewritten == nil {
                #expect(expected == resources, "seed \(seed) \(encoding) case \(index): nil means nothing to add")
                continue
            }
            rewrittenCount += 1
            let rewritten = decoded[2 * index + 1]
            #expect(rewritten.error == nil, "seed \(seed) \(encoding) case \(index): \(rewritten.error ?? "")")
            #expect(rewritten.resources == expected, "seed \(seed) \(encoding) case \(index)")
            #expect(rewritten.rest == original.rest, "seed \(seed) \(encoding) case \(index): the rest is untouched")
        }
        #expect(rewrittenCount > 150, "seed \(seed) \(encoding): most cases add something (\(rewrittenCount))")
    }
}
