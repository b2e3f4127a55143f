import Synchronization

/// The secrets every log handler masks, shared by all of them: settings fill it at start,
/// and values the relay learns later (secrets fetched from AWS, temporary AWS credentials)
/// are added while it runs, before they are used anywhere a log line could show them.
public final class RedactionSet: Sendable, ExpressibleByArrayLiteral {
    private let redactor: Mutex<Redactor>
    /// Lets a line skip the lock while there is nothing to mask (the common case).
    private let hasSecrets: Atomic<Bool>

    public init(_ secrets: [String] = []) {
        let initial = Redactor(secrets)
        redactor = Mutex(initial)
        hasSecrets = Atomic(!initial.isEmpty)
    }

    public convenience init(arrayLiteral secrets: String...) { self.init(secrets) }

    /// Adds values to mask from now on. Empty strings are ignored.
    public func add(_ secrets: [String]) {
        let fresh = secrets.filter { !$0.isEmpty }
        guard !fresh.isEmpty else { return }
        redactor.withLock { $0 = Redactor($0.secrets.map { String(decoding: $0, as: UTF8.self) } + fresh) }
        hasSecrets.store(true, ordering: .releasing)
    }

    public func contains(_ secret: String) -> Bool {
        redactor.withLock { $0.secrets.contains(Array(secret.utf8)) }
    }

    /// What a line is masked with now.
    var current: Redactor {
        guard hasSecrets.load(ordering: .acquiring) else { return Redactor([]) }
        return redactor.withLock { $0 }
    }
}
