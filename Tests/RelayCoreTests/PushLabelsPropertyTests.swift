import Foundation
import RelayTestSupport
import Testing

@testable import RelayCore

/// Random push bodies and label sets: every body the relay rewrites, read back by Google's
/// protobuf runtime, holds the original series with the labels they lacked appended, and
/// samples exactly as they were. `LABELS_SEED` replays a run.
@Suite struct PushLabelsPropertyTests {
    static let namePool = [
        "__name__", "service_name", "faas_name", "faas_version", "cloud_region", "host_arch", "env", "otel.scope.name", "a", "b",
    ]

    static func text(_ random: inout SplitMix64) -> String {
        let alphabet = Array("abcXYZ019-_./$[]{},=\"' é€😀")
        return String((0..<Int.random(in: 0...12, using: &random)).map { _ in alphabet.randomElement(using: &random)! })
    }

    static func name(_ random: inout SplitMix64) -> String {
        Bool.random(using: &random) ? namePool.randomElement(using: &random)! : "l\(Int.random(in: 0..<40, using: &random))"
    }

    static func body(_ random: inout SplitMix64) -> [UInt8] {
        let series = (0..<Int.random(in: 0...4, using: &random)).map { _ -> [PushBodies.SeriesField] in
            // Up to 34 labels: some series are at Pyroscope's 30-name limit or past it.
            var fields: [PushBodies.SeriesField] = (0..<Int.random(in: 0...34, using: &random)).map { _ in
                .label(name: name(&random), value: text(&random))
            }
            for _ in 0..<Int.random(in: 0...3, using: &random) {
                let raw = (0..<Int.random(in: 0...40, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                fields.append(.sample(.init(rawProfile: raw, id: Bool.random(using: &random) ? text(&random) : "")))
            }
            if Int.random(in: 0..<4, using: &random) == 0 { fields.append(.unknown(field: 15, wireType: 0, payload: [0xAC, 0x02])) }
            fields.shuffle(using: &random)  // labels and samples interleaved on the wire
            return fields
        }
        return PushBodies.encode(series: series)
    }

    static func labels(_ random: inout SplitMix64) -> LambdaLabels {
        LambdaLabels(sanitizing: (0..<Int.random(in: 1...9, using: &random)).map { _ in LambdaLabel(name: name(&random), value: text(&random)) })
    }

    /// The series the relay should send: each series' labels, then those of `labels` it
    /// lacks, as long as the series stays within 30 label names.
    static func expected(_ original: [PushBodies.Decoded.Series], adding labels: LambdaLabels) -> [PushBodies.Decoded.Series] {
        original.map { series in
            var series = series
            var names = Set(series.labels.map { $0[0] })
            for label in labels.labels where names.count < PushBodyLabels.maxLabelNamesPerSeries && !names.contains(label.name) {
                names.insert(label.name)
                series.labels.append([label.name, label.value])
            }
            return series
        }
    }

    @Test func rewrittenBodiesDecodeAsTheOriginalSeriesPlusTheLabels() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["LABELS_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64.max)
        var random = SplitMix64(seed: seed)
        var cases: [(body: [UInt8], labels: LambdaLabels, rewritten: [UInt8]?)] = []
        for _ in 0..<400 {
            let body = Self.body(&random)
            let labels = Self.labels(&random)
            cases.append((body, labels, try PushBodyLabels.add(labels.labels, to: body)))
        }
        let decoded = try await PushBodies.decode(cases.flatMap { [$0.body, $0.rewritten ?? $0.body] })
        try #require(decoded.count == cases.count * 2)
        var rewrittenCount = 0
        for (index, testCase) in cases.enumerated() {
            let original = try #require(decoded[2 * index].series, "seed \(seed): the test's own body \(index) decodes")
            let expected = Self.expected(original, adding: testCase.labels)
            if testCase.rewritten == nil {
                #expect(expected == original, "seed \(seed) case \(index): nil means nothing to add")
                continue
            }
            rewrittenCount += 1
            let rewritten = decoded[2 * index + 1]
            #expect(rewritten.error == nil, "seed \(seed) case \(index): \(rewritten.error ?? "")")
            #expect(rewritten.series == expected, "seed \(seed) case \(index)")
        }
        #expect(rewrittenCount > 200, "seed \(seed): most cases add something (\(rewrittenCount))")
    }
}
