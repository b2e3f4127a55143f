import Logging
import NIOCore
import RelayTestSupport
import Testing

@testable import RelayCore

/// The sockets the relay listens on before it registers: bound and listening at once (a
/// client connects before SwiftNIO adopts them), one port for a pair, clear refusals.
@Suite struct ListeningSocketsTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    @Test func aLoopbackPairSharesThePortTheKernelChoseAndAcceptsBeforeItIsAdopted() throws {
        let sockets = try ListeningSockets.open(ListenAddress.loopback(port: 0), logger: logger)
        defer { sockets.closeUnadopted() }
        let ports = Set(sockets.localAddresses.compactMap(\.port))
        #expect(ports.count == 1 && ports.first != 0, "\(sockets.localAddresses)")
        // The kernel completes the handshake from the backlog: the port is reachable now.
        _ = try RawConnection(port: try #require(ports.first), timeoutSeconds: 2)
    }

    @Test func everyInterfaceOnBothFamiliesBindsOnePort() throws {
        let sockets = try ListeningSockets.open(try ListenAddress.parse(":0"), logger: logger)
        defer { sockets.closeUnadopted() }
        let addresses = sockets.localAddresses
        #expect(addresses.count == 2 && Set(addresses.compactMap(\.port)).count == 1, "\(addresses)")
    }

    @Test func aHostNameIsStillResolved() throws {
        // Numbers are parsed without getaddrinfo; a name (PYROSCOPE_LISTEN_ADDRESS=localhost:port)
        // still goes through it.
        let sockets = try ListeningSockets.open([ListenAddress(host: "localhost", port: 0)], logger: logger)
        defer { sockets.closeUnadopted() }
        let address = try #require(sockets.localAddresses.first)
        #expect(["127.0.0.1", "::1"].contains(address.ipAddress ?? ""), "\(address)")
        _ = try RawConnection(port: try #require(address.port), timeoutSeconds: 2)
    }

    @Test func aPortInUseNamesTheSetting() throws {
        let first = try ListeningSockets.open([ListenAddress(host: "127.0.0.1", port: 0)], logger: logger)
        defer { first.closeUnadopted() }
        let port = try #require(first.localAddresses.first?.port)
        do {
            let second = try ListeningSockets.open([ListenAddress(host: "127.0.0.1", port: port)], logger: logger)
            second.closeUnadopted()
            Issue.record("bound a port in use")
        } catch {
            #expect(error.code == .bindFailed && error.message.contains("PYROSCOPE_LISTEN_ADDRESS"), "\(error)")
        }
    }
}
