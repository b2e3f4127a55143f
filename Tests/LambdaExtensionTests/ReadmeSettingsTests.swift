import Foundation
import RelayTestSupport
import Testing

@testable import LambdaExtension

/// The README's settings table must list exactly the variables the code reads.
@Suite struct ReadmeSettingsTests {
    static func source(_ path: String) throws -> String {
        String(decoding: try readFile(ClientFixture.repositoryRoot + "/" + path), as: UTF8.self)
    }

    /// Variables named in reads of the environment in the settings sources.
    static func variablesReadInCode() throws -> Set<String> {
        let text = try ["", "+Network", "+Labels"].map { try source("Sources/Extension/ExtensionSettings\($0).swift") }.joined()
        let pattern = try NSRegularExpression(pattern: #"(?:string|bool|integer|duration|headers|headerValue)\("([A-Za-z_]+)"|environment\["([A-Za-z_]+)"\]"#)
        var names = Set<String>()
        for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            for group in 1...2 {
                if let range = Range(match.range(at: group), in: text) { names.insert(String(text[range])) }
            }
        }
        return names
    }

    static func variablesInReadme() throws -> Set<String> {
        let text = try source("README.md")
        guard let start = text.range(of: "## Settings") else { return [] }
        let section = text[start.upperBound...].prefix { _ in true }
        var names = Set<String>()
        for line in section.split(separator: "\n") {
            if line.hasPrefix("## ") { break }
            guard line.hasPrefix("| `") else { continue }
            let name = line.dropFirst(3).prefix { $0 != "`" }
            names.insert(String(name))
        }
        return names
    }

    @Test func readmeTableListsExactlyTheVariablesTheCodeReads() throws {
        let code = try Self.variablesReadInCode()
        #expect(code.count > 20, "the scan found the reads")
        #expect(code == Set(ExtensionSettings.variables), "ExtensionSettings.variables is the list of reads")
        #expect(try Self.variablesInReadme() == code)
    }
}
