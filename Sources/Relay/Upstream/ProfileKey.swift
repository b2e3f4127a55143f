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

/// Adds the session id to the `name` parameter of a legacy ingest query, as the Go
/// extension's `sessionid.InjectToRequest` does, but rewrites only that parameter: every
/// other byte of the query is kept as the client sent it (Go re-encodes and re-orders
/// the whole query). Returns nil when nothing changes: no parsable name, or a name that
/// already carries a session id.
func injectSessionID(_ sessionID: SessionID, intoQuery query: Substring) -> String? {
    // Go's url.ParseQuery: '&'-separated pairs; a pair with ';' or a bad escape is skipped.
    var pairs = query.split(separator: "&", omittingEmptySubsequences: false)
    var nameIndex: Int?
    var nameValue = ""
    for (index, pair) in pairs.enumerated() where !pair.isEmpty && !pair.contains(";") {
        let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard let key = percentDecode(parts[0], plusIsSpace: true), key == "name",
            let value = percentDecode(parts.count > 1 ? parts[1] : "", plusIsSpace: true)
        else { continue }
        nameIndex = index
        nameValue = value
        break
    }
    guard let nameIndex, var key = ProfileKey(parsing: nameValue) else { return nil }
    guard key.labels[SessionID.labelName] == nil else { return nil }
    key.labels[SessionID.labelName] = sessionID.description
    pairs[nameIndex] = Substring("name=" + queryEscape(key.normalized))
    // Go's Values.Set replaces every value of the key: later `name` pairs go.
    var kept: [Substring] = []
    for (index, pair) in pairs.enumerated() {
        if index > nameIndex, let key = percentDecode(pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0], plusIsSpace: true),
            key == "name"
        {
            continue
        }
        kept.append(pair)
    }
    return kept.joined(separator: "&")
}
