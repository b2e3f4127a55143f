/// A protobuf body the relay cannot read: where the wire format broke.
struct ProtobufMalformed: Error, Equatable {
    var detail: String
}

/// Writing the few protobuf wire shapes the label rewrites add.
enum ProtobufWire {
    static func writeVarint(_ value: UInt64, to output: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            output.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        output.append(UInt8(value))
    }

    /// `field` as a length-delimited field holding `payload`.
    static func appendLengthDelimited(field: UInt64, _ payload: some Collection<UInt8>, to output: inout [UInt8]) {
        writeVarint(field << 3 | UInt64(WireReader.lengthDelimited), to: &output)
        writeVarint(UInt64(payload.count), to: &output)
        output.append(contentsOf: payload)
    }

    static func appendString(field: UInt64, _ text: String, to output: inout [UInt8]) {
        appendLengthDelimited(field: field, Array(text.utf8), to: &output)
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

    mutating func varint() throws(ProtobufMalformed) -> UInt64 {
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

    mutating func key() throws(ProtobufMalformed) -> (field: UInt64, wireType: UInt8) {
        let key = try varint()
        let field = key >> 3
        guard field > 0, field < 1 << 29 else { throw .init(detail: "field number \(field)") }
        return (field, UInt8(key & 7))
    }

    mutating func lengthDelimited() throws(ProtobufMalformed) -> Range<Int> {
        let length = try varint()
        guard length <= UInt64(end - position) else { throw .init(detail: "length \(length) past the end") }
        let start = position
        position += Int(length)
        return start..<position
    }

    /// Skips a field's value; groups (wire types 3 and 4, not in proto3) are refused.
    mutating func skip(_ wireType: UInt8) throws(ProtobufMalformed) {
        switch wireType {
        case Self.varint: _ = try varint()
        case Self.fixed64: try advance(8)
        case Self.lengthDelimited: _ = try lengthDelimited()
        case Self.fixed32: try advance(4)
        default: throw .init(detail: "wire type \(wireType)")
        }
    }

    private mutating func advance(_ count: Int) throws(ProtobufMalformed) {
        guard end - position >= count else { throw .init(detail: "truncated fixed field") }
        position += count
    }
}
