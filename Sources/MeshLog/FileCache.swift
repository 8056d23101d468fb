#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// An open segment file. `fd` stays valid while the caller holds a lease from `FileCache`.
final class OpenFile: @unchecked Sendable {
    // Mutated only under FileCache's lock.
    let path: String
    let fd: Int32
    var leases = 0
    var evicted = false
    var lastUse: UInt64 = 0

    init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }
}

/// Bounds the log's open file descriptors. Readers and the writer lease files from here; the
/// least recently used file without leases is closed when the bound is reached. A file evicted
/// while leased is closed when its last lease ends, so a lease never sees its descriptor vanish.
final class FileCache: Sendable {
    private struct State {
        var files: [String: OpenFile] = [:]
        var tick: UInt64 = 0
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(capacity, 4)
    }

    /// Opens (or reuses) `path` for reading and writing and leases it. Pair with `release`.
    func acquire(_ path: String, create: Bool = false) throws(LogError) -> OpenFile {
        if let file = state.withLock({ s -> OpenFile? in
            guard let f = s.files[path] else { return nil }
            s.tick &+= 1
            f.lastUse = s.tick
            f.leases += 1
            return f
        }) { return file }

        let fd = try FileIO.open(path, flags: O_RDWR | (create ? O_CREAT : 0))
        let (file, toClose) = state.withLock { s -> (OpenFile, [Int32]) in
            s.tick &+= 1
            if let raced = s.files[path] {
                raced.leases += 1
                raced.lastUse = s.tick
                return (raced, [fd])
            }
            let f = OpenFile(path: path, fd: fd)
            f.leases = 1
            f.lastUse = s.tick
            s.files[path] = f
            return (f, Self.evictIfNeeded(&s, capacity: capacity))
        }
        toClose.forEach(FileIO.close)
        return file
    }

    func release(_ file: OpenFile) {
        let close = state.withLock { _ -> Bool in
            file.leases -= 1
            return file.leases == 0 && file.evicted
        }
        if close { FileIO.close(file.fd) }
    }

    /// Leases `path`, runs `body` with its descriptor, and releases it.
    func with<T>(_ path: String, _ body: (OpenFile) throws(LogError) -> T) throws(LogError) -> T {
        let file = try acquire(path)
        defer { release(file) }
        return try body(file)
    }

    /// Drops `path` from the cache (the file is being deleted or renamed).
    func forget(_ path: String) {
        let close = state.withLock { s -> Int32? in
            guard let f = s.files.removeValue(forKey: path) else { return nil }
            f.evicted = true
            return f.leases == 0 ? f.fd : nil
        }
        if let fd = close { FileIO.close(fd) }
    }

    func closeAll() {
        let fds = state.withLock { s -> [Int32] in
            let all = s.files.values
            s.files = [:]
            return all.compactMap { f in
                f.evicted = true
                return f.leases == 0 ? f.fd : nil
            }
        }
        fds.forEach(FileIO.close)
    }

    var openCount: Int { state.withLock { $0.files.count } }

    private static func evictIfNeeded(_ s: inout State, capacity: Int) -> [Int32] {
        guard s.files.count > capacity else { return [] }
        // Evict the oldest eighth at once so the scan cost is amortised over many opens.
        let target = capacity - capacity / 8
        let victims = s.files.values.filter { $0.leases == 0 }.sorted { $0.lastUse < $1.lastUse }
        var closed: [Int32] = []
        for f in victims {
            if s.files.count <= target { break }
            s.files.removeValue(forKey: f.path)
            f.evicted = true
            closed.append(f.fd)
        }
        return closed
    }
}
