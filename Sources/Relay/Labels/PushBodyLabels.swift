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
    struct Malformed: Error, Equatable {
        var detail: String
    }

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
            writeVarint(UInt64(series.count + additions.count), to: &output)
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
            appendString(field: 1, label.name, to: &pair)
            appendString(field: 2, label.value, to: &pair)
            encoded.append(0x0A)  // field 1, length-delimited
            writeVarint(UInt64(pair.count), to: &encoded)
            encoded.append(contentsOf: pair)
        }
        return encoded
    }

    private static func appendString(field: UInt8, _ text: String, to output: inout [UInt8]) {
        output.append(field << 3 | WireReader.lengthDelimited)
        writeVarint(UInt64(text.utf8.count), to: &output)
        output.append(contentsOf: text.utf8)
    }

    static func writeVarint(_ value: UInt64, to output: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            output.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        output.append(UInt8(value))
    }
}

/// Reads protobuf wire format within a range of a byte array; every read is bounds-checked.
struct WireReader {
    static let varint: UInt8 = 0
    static let fixed64: UInt8 = 1
    static let lengthDelimited: UInt8 = 2
    static let fixed32: UInt8 = 5

    private let bytes: [UInt8]
    private(set) var position: Int
    private let end: Int

    init(_ bytes: [UInt8], range: Range<Int>) {
        self.bytes = bytes
        self.position = range.lowerBound
        self.end = range.upperBound
    }

    var isAtEnd: Bool { position >= end }

    mutating func varint() throws(PushBodyLabels.Malformed) -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 70, by: 7) {
            guard position < end else { throw .init(detail: "truncated varint") }
            let byte = bytes[position]
            position += 1
            if shift == 63, byte > 1 { throw .init(detail: "varint over 64 bits") }
            value |= UInt64(byte & 0x7F) << UInt64(shift)
            if byte < 0x80 { return value }
        }
        throw .init(detail: "varint over 10 bytes")
    }

    mutating func key() throws(PushBodyLabels.Malformed) -> (field: UInt64, wireType: UInt8) {
        let key = try varint()
        let field = key >> 3
        guard field > 0, field < 1 << 29 else { throw .init(detail: "field number \(field)") }
        return (field, UInt8(key & 7))
    }

    mutating func lengthDelimited() throws(PushBodyLabels.Malformed) -> Range<Int> {
        let length = try varint()
        guard length <= UInt64(end - position) else { throw .init(detail: "length \(length) past the end") }
        let start = position
        position += Int(length)
        return start..<position
    }

    /// Skips a field's value; groups (wire types 3 and 4, not in proto3) are refused.
    mutating func skip(_ wireType: UInt8) throws(PushBodyLabels.Malformed) {
        switch wireType {
        case Self.varint: _ = try varint()
        case Self.fixed64: try advance(8)
        case Self.lengthDelimited: _ = try lengthDelimited()
        case Self.fixed32: try advance(4)
        default: throw .init(detail: "wire type \(wireType)")
        }
    }

    private mutating func advance(_ count: Int) throws(PushBodyLabels.Malformed) {
        guard end - position >= count else { throw .init(detail: "truncated fixed field") }
        position += count
    }
}
