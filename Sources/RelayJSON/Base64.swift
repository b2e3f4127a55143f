/// Base64 with the standard alphabet (RFC 4648 section 4), for AWS's `SecretBinary`.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Each byte's 6-bit value, or 0xFF for bytes outside the alphabet.
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(value) }
        return table
    }()

    /// The bytes `text` encodes; nil unless it is padded to a multiple of four characters
    /// from the alphabet, with `=` only at the end. As `Data(base64Encoded:)` without
    /// options: no white space or line breaks, and unused bits of the last group ignored.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(input.count / 4 * 3)
        var group = 0
        while group < input.count {
            let isLast = group + 4 == input.count
            let padding = isLast ? input[group...].reversed().prefix { $0 == UInt8(ascii: "=") }.count : 0
            guard padding <= 2 else { return nil }
            var bits: UInt32 = 0
            for byte in input[group..<group + 4 - padding] {
                let value = values[Int(byte)]
                guard value != 0xFF else { return nil }
                bits = bits << 6 | UInt32(value)
            }
            bits <<= UInt32(6 * padding)
            output.append(UInt8(truncatingIfNeeded: bits >> 16))
            if padding < 2 { output.append(UInt8(truncatingIfNeeded: bits >> 8)) }
            if padding < 1 { output.append(UInt8(truncatingIfNeeded: bits)) }
            group += 4
        }
        return output
    }

    /// `bytes` encoded, padded with `=`.
    public static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var start = 0
        while start < bytes.count {
            let chunk = bytes[start..<min(start + 3, bytes.count)]
            var bits: UInt32 = 0
            for byte in chunk { bits = bits << 8 | UInt32(byte) }
            bits <<= UInt32(8 * (3 - chunk.count))
            for position in 0..<4 {
                let value = Int(bits >> UInt32(18 - 6 * position) & 0x3F)
                output.append(position <= chunk.count ? alphabet[value] : UInt8(ascii: "="))
            }
            start += 3
        }
        return String(decoding: output, as: UTF8.self)
    }
}
