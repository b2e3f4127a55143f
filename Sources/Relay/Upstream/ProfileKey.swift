import GoCompatibility

/// A Pyroscope series key `app{k=v,...}`, parsed exactly as the Go extension's
/// `flameql.ParseKey` does (including its leniencies), and printed in its normalized form.
struct ProfileKey: Equatable {
    static let reservedName = "__name__"
    var labels: [String: String]

    init?(parsing name: String) {
        enum State { case name, key, value, done }
        var state = State.name
        var key = ""
        var value = ""
        var labels: [String: String] = [:]
        for character in name.unicodeScalars + ["{"] {
            switch state {
            case .name:
                if character == "{" {
                    state = .key
                    let appName = value.trimmingGoSpace()
                    guard ProfileKey.isValidAppName(appName) else { return nil }
                    labels[ProfileKey.reservedName] = appName
                } else {
                    value.unicodeScalars.append(character)
                }
            case .key:
                switch character {
                case "}": state = .done
                case "=": state = .value; value = ""
                default: key.unicodeScalars.append(character)
                }
            case .value:
                if character == "," || character == "}" {
                    state = .key
                    let trimmedKey = key.trimmingGoSpace()
                    if trimmedKey != ProfileKey.reservedName {
                        guard ProfileKey.isValidTagKey(trimmedKey) else { return nil }
                    }
                    labels[trimmedKey] = value.trimmingGoSpace()
                    key = ""
                } else {
                    value.unicodeScalars.append(character)
                }
            case .done:
                break
            }
        }
        self.labels = labels
    }

    /// `app{k1=v1,k2=v2}` with labels sorted by key bytes.
    var normalized: String {
        var out = labels[ProfileKey.reservedName] ?? ""
        out += "{"
        let keys = labels.keys.filter { $0 != ProfileKey.reservedName }.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        out += keys.map { "\($0)=\(labels[$0]!)" }.joined(separator: ",")
        out += "}"
        return out
    }

    static func isTagKeyScalar(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "_": true
        default: false
        }
    }

    static func isValidAppName(_ name: String) -> Bool {
        !name.isEmpty && name.unicodeScalars.allSatisfy { $0 == "-" || $0 == "." || isTagKeyScalar($0) }
    }

    static func isValidTagKey(_ key: String) -> Bool {
        !key.isEmpty && key.unicodeScalars.allSatisfy(isTagKeyScalar)
    }
}
