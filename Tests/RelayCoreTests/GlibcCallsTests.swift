import CGlibc
import Testing

/// The glibc calls of CGlibc, in the dynamically linked test binary (the layer's static
/// binary is checked by the layer tests: make test-compat resolves a host name there).
@Suite struct GlibcCallsTests {
    @Test func theKernelsExecutablePathNamesThisTestBinary() throws {
        let path = try #require(cglibc_executable_path())
        // swift test runs the package's test bundle (…PackageTests.xctest).
        #expect(String(cString: path).contains("PackageTests"))
    }

    @Test func mallocTrimIsGlibcsNotTheAbsentStandIn() {
        // 0 or 1 from glibc; -1 only where the C library has none.
        #expect([0, 1].contains(cglibc_malloc_trim(0)))
    }

    @Test func aDynamicallyLinkedBinaryKeepsTheSystemsNameServices() {
        #expect(cglibc_is_statically_linked() == 0)
        #expect(cglibc_use_builtin_host_lookup() == 0)
    }
}
