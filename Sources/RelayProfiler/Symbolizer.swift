import CSelfProfiler

#if canImport(Glibc)
    import Glibc
#endif

/// Turns code addresses into demangled function names, outside the signal handler.
///
/// Each module's ELF symbol table is read once, from a read-only mapping of its file
/// (clean, shared pages), into a sorted index of function start addresses; names are
/// read from the mapping only for addresses that occur in samples, and cached.
/// The executable's `.symtab` is used when present (the layer keeps it for this);
/// libraries fall back to `.dynsym`.
final class Symbolizer {
    struct Module {
        var path: String
        var bias: UInt
        var range: Range<UInt>
        /// Read on the first address in this module: most loaded libraries never appear.
        var symbols: ELFSymbols?
        var symbolsLoaded = false
    }

    private(set) var modules: [Module] = []
    private var names: [UInt: String] = [:]
    /// Bounds the cache: a long-lived process sees new addresses only slowly, but never
    /// lets it grow without end.
    private let maxCachedNames = 50_000

    init() { reloadModules() }

    /// The module list changes only when a library is loaded; reload on a miss.
    func reloadModules() {
        var buffer = [csp_module](repeating: csp_module(), count: 256)
        let count = Int(csp_modules(&buffer, Int32(buffer.count)))
        let previous = Dictionary(modules.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        modules = buffer[..<count].map { raw in
            var raw = raw
            let name = withUnsafeBytes(of: &raw.path) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            // The main executable's name is empty. The vDSO (clock_gettime) stays a module
            // with no file, so its addresses are named by module and offset, and a miss in
            // it does not reload the module list each time.
            let path = name.isEmpty ? "/proc/self/exe" : name
            if let known = previous[path], known.bias == raw.bias { return known }
            return Module(path: path, bias: raw.bias, range: raw.start..<raw.end)
        }
    }

    func module(containing address: UInt) -> Int? {
        modules.firstIndex { $0.range.contains(address) }
    }

    /// The function containing `address`. Return addresses (every frame but the leaf)
    /// point after their call instruction, which may be the next function: callers pass
    /// `address - 1` for them.
    func functionName(at address: UInt) -> String {
        if let cached = names[address] { return cached }
        var index = module(containing: address)
        if index == nil {
            reloadModules()
            index = module(containing: address)
        }
        let name: String
        if let index {
            if !modules[index].symbolsLoaded {
                modules[index].symbols = ELFSymbols(path: modules[index].path)
                modules[index].symbolsLoaded = true
            }
            let module = modules[index]
            if let raw = module.symbols?.name(containing: address &- module.bias) {
                name = Self.demangle(raw)
            } else {
                name = "\(Self.fileName(module.path)) 0x\(String(address &- module.bias, radix: 16))"
            }
        } else {
            name = "0x\(String(address, radix: 16))"
        }
        if names.count >= maxCachedNames { names.removeAll(keepingCapacity: true) }
        names[address] = name
        return name
    }

    /// Drops the file pages read for names (clean pages, re-read if needed): names in
    /// use are cached, so between profile windows the symbol files cost no memory.
    func releasePages() {
        for module in modules { module.symbols?.releasePages() }
    }

    static func fileName(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }

    static func demangle(_ raw: String) -> String {
        let demangled: UnsafeMutablePointer<CChar>?
        if raw.hasPrefix("$s") || raw.hasPrefix("_$s") || raw.hasPrefix("$S") || raw.hasPrefix("_T0") {
            demangled = raw.withCString { csp_demangle_swift($0, strlen($0)) }
        } else if raw.hasPrefix("_Z") {
            demangled = raw.withCString { csp_demangle_cxx($0) }
        } else {
            demangled = nil
        }
        guard let demangled else { return raw }
        defer { free(demangled) }
        return String(cString: demangled)
    }
}

/// The function symbols of one ELF file (64-bit, little-endian: x86_64 and arm64).
final class ELFSymbols {
    private let base: UnsafeRawPointer
    private let length: Int
    private let stringTable: Range<Int>
    /// Function start (ELF virtual address), size, and name offset, sorted by start.
    private var starts: [UInt] = []
    private var sizes: [UInt32] = []
    private var nameOffsets: [UInt32] = []

    /// Nil when the file cannot be read or has no function symbols.
    init?(path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size > 64 else { return nil }
        let length = Int(info.st_size)
        guard let mapping = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), mapping != MAP_FAILED else { return nil }
        self.base = UnsafeRawPointer(mapping)
        self.length = length
        guard let table = ELFSymbols.symbolTable(base: base, length: length) else {
            munmap(mapping, length)
            return nil
        }
        self.stringTable = table.strings
        index(symbols: table.symbols)
        // The index has what the symbol entries held: let their pages go (clean file
        // pages, so this costs nothing but a re-read should they be touched again).
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = (table.symbols.lowerBound / page) * page
        madvise(mapping + first, table.symbols.upperBound - first, MADV_DONTNEED)
        // From here on deinit unmaps.
        if starts.isEmpty { return nil }
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), length) }

    func releasePages() { madvise(UnsafeMutableRawPointer(mutating: base), length, MADV_DONTNEED) }

    var count: Int { starts.count }

    private func load<T: FixedWidthInteger>(_ offset: Int, as type: T.Type) -> T {
        T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// `.symtab` and its string table when present, else `.dynsym`.
    private static func symbolTable(base: UnsafeRawPointer, length: Int) -> (symbols: Range<Int>, strings: Range<Int>)? {
        let magic: [UInt8] = [0x7F, 0x45, 0x4C, 0x46]
        guard (0..<4).allSatisfy({ base.load(fromByteOffset: $0, as: UInt8.self) == magic[$0] }),
            base.load(fromByteOffset: 4, as: UInt8.self) == 2,  // ELFCLASS64
            base.load(fromByteOffset: 5, as: UInt8.self) == 1  // little-endian
        else { return nil }
        func u16(_ o: Int) -> Int { Int(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt16.self))) }
        func u32(_ o: Int) -> Int { Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
        func u64(_ o: Int) -> Int { Int(truncatingIfNeeded: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt64.self))) }
        let sectionsAt = u64(0x28)
        let entrySize = u16(0x3A)
        let count = u16(0x3C)
        guard entrySize >= 64, sectionsAt > 0, sectionsAt + count * entrySize <= length else { return nil }
        func section(_ i: Int) -> (type: Int, offset: Int, size: Int, link: Int) {
            let at = sectionsAt + i * entrySize
            return (u32(at + 4), u64(at + 0x18), u64(at + 0x20), u32(at + 0x28))
        }
        let SHT_SYMTAB = 2
        let SHT_DYNSYM = 11
        for wanted in [SHT_SYMTAB, SHT_DYNSYM] {
            for i in 0..<count {
                let symbols = section(i)
                guard symbols.type == wanted, symbols.link < count else { continue }
                let strings = section(symbols.link)
                guard symbols.offset + symbols.size <= length, strings.offset + strings.size <= length else { continue }
                return (symbols.offset..<(symbols.offset + symbols.size), strings.offset..<(strings.offset + strings.size))
            }
        }
        return nil
    }

    private func index(symbols: Range<Int>) {
        let symbolSize = 24
        var entries: [(start: UInt, size: UInt32, name: UInt32)] = []
        entries.reserveCapacity(symbols.count / symbolSize)
        var at = symbols.lowerBound
        while at + symbolSize <= symbols.upperBound {
            let type = load(at + 4, as: UInt8.self) & 0xF
            let value = UInt(load(at + 8, as: UInt64.self))
            // STT_FUNC (2) and STT_GNU_IFUNC (10), defined here (section index != 0).
            if (type == 2 || type == 10) && value != 0 && load(at + 6, as: UInt16.self) != 0 {
                let size = load(at + 16, as: UInt64.self)
                entries.append((value, UInt32(clamping: size), load(at, as: UInt32.self)))
            }
            at += symbolSize
        }
        entries.sort { $0.start < $1.start }
        starts = entries.map(\.start)
        sizes = entries.map(\.size)
        nameOffsets = entries.map(\.name)
    }

    /// The raw (mangled) name of the function whose code holds `address`.
    func name(containing address: UInt) -> String? {
        // The last symbol starting at or before the address.
        var low = 0
        var high = starts.count
        while low < high {
            let middle = (low + high) / 2
            if starts[middle] <= address { low = middle + 1 } else { high = middle }
        }
        guard low > 0 else { return nil }
        let i = low - 1
        // A size of 0 (hand-written assembly) is taken as reaching the next symbol.
        if sizes[i] != 0 && address >= starts[i] + UInt(sizes[i]) { return nil }
        let offset = stringTable.lowerBound + Int(nameOffsets[i])
        guard offset < stringTable.upperBound else { return nil }
        let limit = stringTable.upperBound - offset
        let bytes = UnsafeRawBufferPointer(start: base + offset, count: limit)
        let end = bytes.firstIndex(of: 0) ?? limit
        return String(decoding: bytes[..<end], as: UTF8.self)
    }
}
