#if canImport(Glibc)
    import Glibc
#endif

/// The names in a directory ("." and ".." left out), or nil when it cannot be opened (errno
/// says why).
///
/// Each name is read where `readdir` put it, up to its NUL. Not `entry.pointee.d_name`: that
/// loads the whole 256-byte array, but glibc packs entries by their real length, so the array
/// of the last one in its buffer can run past the buffer's end; reading /proc/self/fd with
/// 1,372 descriptors open crashed the test process that way (a bad pointer dereference in
/// `ProcessMetrics.update`).
package func directoryEntryNames(_ path: String) -> [String]? {
    guard let directory = opendir(path) else { return nil }
    defer { closedir(directory) }
    let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = String(cString: (UnsafeRawPointer(entry) + nameOffset).assumingMemoryBound(to: CChar.self))
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}
