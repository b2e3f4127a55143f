import CZlib

/// The spool's file format, version 1 (all integers little-endian):
///
///     "PYSP"              magic, 4 bytes
///     version             UInt8 (= 1)
///     receivedAtUnixMs    Int64
///     attempts            Int64 (always 0: kept so earlier spools still read)
///     method              UInt32 length + UTF-8 bytes
///     target              UInt32 length + UTF-8 bytes
///     header count        UInt32, then per header: name and value, each UInt32 length + bytes
///     body                UInt32 length + bytes
///     crc32               UInt32, zlib's CRC-32 of every byte before it
///
/// The CRC catches what the write protocol (temp file, then rename) cannot: a file damaged
/// or truncated by something else, or a foreign file with a record's name.
enum SpoolRecordCodec {
    static let magic: [UInt8] = Array("PYSP".utf8)
    static let version: UInt8 = 1
    /// magic + version + receivedAt + attempts + 4 length/count fields + body length + crc.
    static let minimumSize = 4 + 1 + 8 + 8 + 4 + 4 + 4 + 4 + 4

    struct DecodeFailure: Error {
        var text: String
    }

    static func encode(_ record: SpoolRecord) throws(SpoolError) -> [UInt8] {
        var out: [UInt8] = []
        let result = record.body.withUnsafeBytes { body -> Result<Void, SpoolError> in
            do throws(SpoolError) {
                try encode(
                    method: record.method, target: record.target, headers: record.headers, body: body,
                    receivedAtUnixMs: record.receivedAtUnixMs, into: &out)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
        return out
    }

    /// Appends the record of an upload to `out`, straight from its headers and body.
    static func encode(_ upload: Upload, receivedAtUnixMs: Int64, into out: inout [UInt8]) throws(SpoolError) {
        let headers = upload.headers.map { (name: $0.name, value: $0.value) }
        // ByteBuffer's closure API rethrows untyped errors: carry the typed one out as a value.
        let result = upload.body.withUnsafeReadableBytes { body -> Result<Void, SpoolError> in
            do throws(SpoolError) {
                try encode(
                    method: upload.method.rawValue, target: upload.target, headers: headers, body: body,
                    receivedAtUnixMs: receivedAtUnixMs, into: &out)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    private static func encode(
        method: String, target: String, headers: [(name: String, value: String)], body: UnsafeRawBufferPointer, receivedAtUnixMs: Int64,
        into out: inout [UInt8]
    ) throws(SpoolError) {
        let start = out.count
        var size = minimumSize + method.utf8.count + target.utf8.count + body.count
        for header in headers { size += 8 + header.name.utf8.count + header.value.utf8.count }
        out.reserveCapacity(start + size)
        out.append(contentsOf: magic)
        out.append(version)
        appendInteger(&out, UInt64(bitPattern: receivedAtUnixMs))
        appendInteger(&out, UInt64(0))
        try appendField(&out, method.utf8)
        try appendField(&out, target.utf8)
        guard let count = UInt32(exactly: headers.count) else { throw SpoolError(code: .io, message: "too many headers to spool") }
        appendInteger(&out, count)
        for header in headers {
            try appendField(&out, header.name.utf8)
            try appendField(&out, header.value.utf8)
        }
        try appendField(&out, body)
        appendInteger(&out, checksum(out[start...]))
    }

    static func decode(_ bytes: [UInt8]) -> Result<SpoolRecord, DecodeFailure> {
        guard bytes.count >= minimumSize else { return .failure(DecodeFailure(text: "too short (\(bytes.count) bytes)")) }
        guard bytes[0..<4].elementsEqual(magic) else { return .failure(DecodeFailure(text: "bad magic")) }
        guard bytes[4] == version else { return .failure(DecodeFailure(text: "unsupported version \(bytes[4])")) }
        let payloadEnd = bytes.count - 4
        var trailer = Reader(bytes: bytes, position: payloadEnd, end: bytes.count)
        guard let stored = try? trailer.uint32(), stored == checksum(bytes[..<payloadEnd]) else {
            return .failure(DecodeFailure(text: "checksum mismatch (truncated or damaged)"))
        }
        var reader = Reader(bytes: bytes, position: 5, end: payloadEnd)
        do {
            let receivedAt = Int64(bitPattern: try reader.uint64())
            _ = try reader.uint64()  // attempts: unused
            let method = try reader.string()
            let target = try reader.string()
            let headerCount = Int(try reader.uint32())
            // Each header takes at least 8 bytes: don't trust the count for allocation.
            var headers: [(name: String, value: String)] = []
            headers.reserveCapacity(min(headerCount, (payloadEnd - reader.position) / 8))
            for _ in 0..<headerCount {
                let name = try reader.string()
                let value = try reader.string()
                headers.append((name, value))
            }
            let body = try reader.field()
            guard reader.position == payloadEnd else {
                return .failure(DecodeFailure(text: "\(payloadEnd - reader.position) trailing bytes"))
            }
            return .success(SpoolRecord(method: method, target: target, headers: headers, body: Array(body), receivedAtUnixMs: receivedAt))
        } catch {
            return .failure(error)
        }
    }

    /// zlib's CRC-32 (IEEE 802.3 polynomial, as gzip and PNG use).
    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.withUnsafeBytes { raw in
            // zlib takes at most UInt32.max bytes per call; records are far smaller.
            UInt32(crc32(0, raw.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(raw.count)))
        }
    }

    private static func appendField<C: Collection<UInt8>>(_ out: inout [UInt8], _ bytes: C) throws(SpoolError) {
        guard let length = UInt32(exactly: bytes.count) else {
            throw SpoolError(code: .io, message: "field of \(bytes.count) bytes is too large to spool")
        }
        appendInteger(&out, length)
        out.append(contentsOf: bytes)
    }

    private struct Reader {
        let bytes: [UInt8]
        var position: Int
        let end: Int

        mutating func take(_ count: Int) throws(DecodeFailure) -> ArraySlice<UInt8> {
            guard count >= 0, count <= end - position else { throw DecodeFailure(text: "field overruns the record at offset \(position)") }
            defer { position += count }
            return bytes[position..<(position + count)]
        }

        mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(DecodeFailure) -> T {
            var value: T = 0
            for (index, byte) in try take(MemoryLayout<T>.size).enumerated() { value |= T(byte) << (8 * index) }
            return value
        }

        mutating func uint32() throws(DecodeFailure) -> UInt32 { try integer(UInt32.self) }
        mutating func uint64() throws(DecodeFailure) -> UInt64 { try integer(UInt64.self) }

        mutating func field() throws(DecodeFailure) -> ArraySlice<UInt8> {
            let length = Int(try uint32())
            return try take(length)
        }

        mutating func string() throws(DecodeFailure) -> String {
            String(decoding: try field(), as: UTF8.self)
        }
    }
}
