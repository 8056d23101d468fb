import CMeshSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Thin, typed wrappers over the POSIX calls the log uses. Every call retries EINTR and turns
/// failures into `LogError`s naming the path.
enum FileIO {
    static func open(_ path: String, flags: Int32, mode: mode_t = 0o644) throws(LogError) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if errno == EINTR { continue }
            throw .system("open", path: path, errno: errno)
        }
    }

    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Writes all of `buffer` at `offset`; a short write is continued, an error thrown.
    static func pwriteAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: Int64, path: String) throws(LogError) {
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .system("write", path: path, errno: errno)
            }
            if n == 0 { throw LogError(.io, "write \(path): no progress") }
            done += n
        }
    }

    /// Reads up to `buffer.count` bytes at `offset`; returns how many were read (short at end of file).
    static func preadUpTo(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: Int64, path: String) throws(LogError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .system("read", path: path, errno: errno)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    static func read(path: String) throws(LogError) -> [UInt8] {
        let fd = try open(path, flags: O_RDONLY)
        defer { close(fd) }
        let size = try fileSize(fd, path: path)
        var bytes = [UInt8](repeating: 0, count: Int(size))
        let n = try bytes.withUnsafeMutableBytes { buf in
            Result { () throws(LogError) in try preadUpTo(fd, buf, at: 0, path: path) }
        }.get()
        if n < bytes.count { bytes.removeLast(bytes.count - n) }
        return bytes
    }

    /// Writes a whole file durably: temporary file, fsync, rename, fsync of the directory.
    static func writeAtomically(path: String, bytes: [UInt8]) throws(LogError) {
        let tmp = path + ".tmp"
        let fd = try open(tmp, flags: O_WRONLY | O_CREAT | O_TRUNC)
        do throws(LogError) {
            try bytes.withUnsafeBytes { buf in Result { () throws(LogError) in try pwriteAll(fd, buf, at: 0, path: tmp) } }.get()
            try sync(fd, path: tmp)
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        if rename(tmp, path) != 0 { throw .system("rename", path: path, errno: errno) }
        try syncDirectory(of: path)
    }

    static func sync(_ fd: Int32, path: String) throws(LogError) {
        while fdatasync(fd) != 0 {
            if errno == EINTR { continue }
            throw .system("fsync", path: path, errno: errno)
        }
    }

    /// Starts writing `count` bytes from `offset` back to the disk without waiting for them
    /// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`): a hint that keeps dirty pages from piling up, not
    /// a durability point, so a failure is ignored (the next fsync reports what matters).
    static func startWriteback(_ fd: Int32, from offset: Int64, count: Int64) {
        _ = mesh_start_writeback(fd, offset, count)
    }

    static func syncDirectory(of path: String) throws(LogError) {
        let dir = parent(of: path)
        let fd = try open(dir, flags: O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        if fsync(fd) != 0 && errno != EINVAL { throw .system("fsync", path: dir, errno: errno) }
    }

    static func truncate(_ fd: Int32, to size: Int64, path: String) throws(LogError) {
        while ftruncate(fd, off_t(size)) != 0 {
            if errno == EINTR { continue }
            throw .system("truncate", path: path, errno: errno)
        }
    }

    static func fileSize(_ fd: Int32, path: String) throws(LogError) -> Int64 {
        var st = stat()
        if fstat(fd, &st) != 0 { throw .system("stat", path: path, errno: errno) }
        return Int64(st.st_size)
    }

    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    static func makeDirectories(_ path: String) throws(LogError) {
        if exists(path) { return }
        let up = parent(of: path)
        if up != path && !up.isEmpty { try makeDirectories(up) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw .system("mkdir", path: path, errno: errno) }
    }

    static func remove(_ path: String) throws(LogError) {
        if unlink(path) != 0 && errno != ENOENT { throw .system("delete", path: path, errno: errno) }
    }

    static func removeTree(_ path: String) {
        for name in (try? list(path)) ?? [] {
            let child = path + "/" + name
            var st = stat()
            if lstat(child, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { removeTree(child) } else { _ = unlink(child) }
        }
        _ = rmdir(path)
    }

    /// The names in a directory, without `.` and `..`.
    static func list(_ path: String) throws(LogError) -> [String] {
        guard let dir = opendir(path) else { throw .system("list", path: path, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

/// Wall-clock time in microseconds since the Unix epoch.
public func wallClockMicros() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1_000
}

/// Monotonic time in nanoseconds, for intervals.
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
