extension UploadForwarder {
    enum CredentialsForUpload {
        case ready(UpstreamCredentials)
        case drop(DropReason, String)
    }

    /// The credentials for `upload`: at once when they are there; otherwise the upload waits
    /// for them (it was accepted: it is not dropped for this) until it is too old to
    /// deliver, or until the drain deadline cancels the wait at shutdown.
    func credentials(for upload: Upload, from source: any UpstreamCredentialSource) async -> CredentialsForUpload {
        if let credentials = source.current { return .ready(credentials) }
        let remaining = retryPolicy.maxAge - (clock.now - upload.receivedAt)
        do {
            switch try await source.waitForCredentials(atMost: remaining) {
            case .available(let credentials): return .ready(credentials)
            case .timedOut: return .drop(.tooOld, "Dropped upload: the credentials could not be fetched before it was too old to deliver")
            case .unusable: return .drop(.misconfigured, "Dropped upload: the credentials setting is unusable (see the error at start)")
            }
        } catch {
            return .drop(.shutdownDeadline, "Dropped upload waiting for credentials: drain deadline passed")
        }
    }
}
