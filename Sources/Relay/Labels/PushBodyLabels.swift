/// Adds labels to every series of a push API body (`push.v1.PushRequest`) at the protobuf
/// wire level, so the relay needs no protobuf library and touches nothing else:
///
///     PushRequest      { repeated RawProfileSeries series = 1; }
///     RawProfileSeries { repeated LabelPair labels = 1; repeated RawSample samples = 2; }
///     LabelPair        { string name = 1; string value = 2; }
///
/// Each series gets the `LabelPair`s it lacks appended after its own fields (a repeated
/// field's entries may come in any order on the wire; decoders keep them in order, so the
/// labels read as the client's followed by the relay's); its length is encoded again.
/// Every other byte (samples, unknown fields, other top-level fields) is copied as sent.
enum PushBodyLabels {
    typealias Malformed = ProtobufMalformed

    /// Pyroscope's default `max_label_names_per_series`: a series over it fails the whole
    /// request with 400, so the relay never adds a label that would take one past it.
    static let maxLabelNamesPerSeries = 30

    /// The body with the labels added; nil when no series lacks any (or there is none).
    static func add(_ labels: [LambdaLabel], to body: [UInt8]) throws(Malformed) -> [UInt8]? {
        var reader = WireReader(body, range: body.indices)
        var output: [UInt8] = []
        var changed = false
        var copiedUpTo = 0
        while !reader.isAtEnd {
            let (field, wireType) = try reader.key()
            guard field == 1 else {
                try reader.skip(wireType)
                continue
            }
            guard wireType == WireReader.lengthDelimited else { throw Malformed(detail: "series with wire type \(wireType)") }
            let keyEnd = reader.position
            let series = try reader.lengthDelimited()
            let additions = try missingLabels(labels, series: series, in: body)
            guard !additions.isEmpty else { continue }
            if !changed {
                output.reserveCapacity(body.count + 64 * labels.count)
                changed = true
            }
            // Everything since the last rewritten series, this series' key, new length, content.
            output.append(contentsOf: body[copiedUpTo..<keyEnd])
            ProtobufWire.writeVarint(UInt64(series.count + additions.count), to: &output)
            output.append(contentsOf: body[series])
            output.append(contentsOf: additions)
            copiedUpTo = series.upperBound
        }
        guard changed else { return nil }
        output.append(contentsOf: body[copiedUpTo...])
        return output
    }

    /// The encoded `LabelPair` fields for the labels the series lacks, within the name limit.
    private static func missingLabels(_ labels: [LambdaLabel], series: Range<Int>, in body: [UInt8]) throws(Malformed) -> [UInt8] {
        var names = Set<[UInt8]>()
        var reader = WireReader(body, range: series)
        while !reader.isAtEnd {
            let (field, wireType) = try reader.key()
            guard field == 1 else {
                try reader.skip(wireType)
                continue
            }
            guard wireType == WireReader.lengthDelimited else { throw Malformed(detail: "label with wire type \(wireType)") }
            var pair = WireReader(body, range: try reader.lengthDelimited())
            // A singular field seen twice: the last one counts, as in every protobuf decoder.
            var name = Range(uncheckedBounds: (pair.position, pair.position))
            while !pair.isAtEnd {
                let (pairField, pairWireType) = try pair.key()
                if pairField == 1 {
                    guard pairWireType == WireReader.lengthDelimited else { throw Malformed(detail: "label name with wire type \(pairWireType)") }
                    name = try pair.lengthDelimited()
                } else {
                    try pair.skip(pairWireType)
                }
            }
            names.insert(Array(body[name]))
        }
        var room = maxLabelNamesPerSeries - names.count
        var encoded: [UInt8] = []
        for label in labels where room > 0 && !names.contains(Array(label.name.utf8)) {
            room -= 1
            var pair: [UInt8] = []
            ProtobufWire.appendString(field: 1, label.name, to: &pair)
            ProtobufWire.appendString(field: 2, label.value, to: &pair)
            ProtobufWire.appendLengthDelimited(field: 1, pair, to: &encoded)
        }
        return encoded
    }
}
