import Foundation

/// The unprivileged user Lambda runs extensions as (`sbx_user1051`, uid 993 gid 990 in
/// Lambda's execution environments, Managed Instances likewise): no capabilities, no
/// supplementary groups, and so only `/tmp` writable of a root-owned tree. Tests run as
/// root here, where a socket option that needs privileges, or a write outside `/tmp`,
/// succeeds silently; run as this user they fail as they would in Lambda.
public struct LambdaUser: Sendable, Equatable, CustomStringConvertible {
    public var uid: UInt32
    public var gid: UInt32

    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }

    /// Lambda's own.
    public static let sandbox = LambdaUser(uid: 993, gid: 990)

    public var description: String { "\(uid):\(gid)" }

    /// util-linux's `setpriv`, which drops to the user and then execs the program (so the
    /// process id is the program's own, and signals reach it).
    static let setpriv = "/usr/bin/setpriv"

    /// Why the user cannot be switched to here, or nil when it can: tests skip with this.
    public static var unavailableReason: String? {
        if geteuid() != 0 { return nil }  // already unprivileged: run as we are
        if !FileManager.default.isExecutableFile(atPath: setpriv) {
            return "running as an unprivileged user needs \(setpriv) (Debian's util-linux)"
        }
        return nil
    }

    /// The program and arguments that run a command as this user (none when the tests do
    /// not run as root: they are unprivileged already).
    func launcher() throws -> (String, [String]) {
        if let reason = Self.unavailableReason { throw LambdaUserError(description: reason) }
        guard geteuid() == 0 else { return ("/usr/bin/env", []) }
        return (Self.setpriv, ["--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--inh-caps=-all", "--"])
    }
}

public struct LambdaUserError: Error, CustomStringConvertible {
    public var description: String
}
