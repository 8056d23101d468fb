#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Synchronization

/// Where a consumer group has got to in one partition.
public struct GroupOffset: Sendable, Hashable {
    public let topic: String
    public let partition: Int
    /// The next offset the group will read.
    public let offset: Int64

    public init(topic: String, partition: Int, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// Consumer groups' committed offsets, kept in memory and in an append-only journal
/// (`groups/offsets.log`, framed and checksummed like segment records) that is compacted into a
/// snapshot when it grows. A commit returns once its journal entry is fsynced, so committed
/// offsets survive crashes.
public final class ConsumerOffsets: Sendable {
    private struct Key: Hashable {
        let group: String
        let topic: String
        let partition: Int
    }
    private struct State {
        var offsets: [Key: Int64] = [:]
        var fd: Int32
        var size: Int64
        var sequence: Int64
    }

    private let path: String
    private let state: Mutex<State>
    /// Commits are serialised on this queue, off the callers' threads (and any event loop).
    private let queue = DispatchQueue(label: "meshgate.consumer-offsets")
    private let compactBytes: Int64

    init(directory: String, maxRecordBytes: Int, compactBytes: Int64 = 4 << 20) throws(LogError) {
        try FileIO.makeDirectories(directory)
        path = directory + "/offsets.log"
        self.compactBytes = compactBytes
        let tmp = path + ".tmp"
        if FileIO.exists(tmp) { try FileIO.remove(tmp) }
        let fd = try FileIO.open(path, flags: O_RDWR | O_CREAT)
        var offsets: [Key: Int64] = [:]
        var sequence: Int64 = 0
        let length = try FileIO.fileSize(fd, path: path)
        let end = try Segment.scan(fd: fd, path: path, from: 0, limit: length, expectedOffset: nil, maxRecordBytes: maxRecordBytes) { v in
            if let entry = Self.decode(v.payload) { offsets[entry.0] = entry.1 }
            sequence = v.offset + 1
            return true
        }
        var size = length
        if case .invalid(let position, _) = end {
            try FileIO.truncate(fd, to: position, path: path)
            try FileIO.sync(fd, path: path)
            size = position
        }
        state = Mutex(State(offsets: offsets, fd: fd, size: size, sequence: sequence))
    }

    deinit {
        state.withLock { FileIO.close($0.fd) }
    }

    /// The committed offset of a group in one partition, if it has one.
    public func committed(group: String, topic: String, partition: Int) -> Int64? {
        state.withLock { $0.offsets[Key(group: group, topic: topic, partition: partition)] }
    }

    /// Every committed offset of a group, ordered by topic and partition.
    public func committed(group: String) -> [GroupOffset] {
        state.withLock { s in
            s.offsets.compactMap { k, v in k.group == group ? GroupOffset(topic: k.topic, partition: k.partition, offset: v) : nil }
        }.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
    }

    /// The names of all groups with committed offsets.
    public var groups: [String] {
        state.withLock { Set($0.offsets.keys.map(\.group)) }.sorted()
    }

    /// Durably records the offsets; returns once they are fsynced.
    public func commit(group: String, _ offsets: [GroupOffset]) async throws(LogError) {
        let result: Result<Void, LogError> = await withUnsafeContinuation { cont in
            queue.async {
                cont.resume(returning: Result { () throws(LogError) in try self.write(group: group, offsets) })
            }
        }
        try result.get()
    }

    /// The same, blocking the calling thread (not for event loops).
    public func commitNow(group: String, _ offsets: [GroupOffset]) throws(LogError) {
        try queue.sync { Result { () throws(LogError) in try write(group: group, offsets) } }.get()
    }

    private func write(group: String, _ offsets: [GroupOffset]) throws(LogError) {
        guard !offsets.isEmpty else { return }
        try state.withLock { (s) throws(LogError) in
            let buffer = WriteBuffer(capacity: 256)
            for (i, o) in offsets.enumerated() {
                let payload = Self.encode(group: group, o)
                let p = buffer.claim(RecordFormat.headerSize + payload.count)
                payload.withUnsafeBytes { RecordFormat.write(offset: s.sequence + Int64(i), timestamp: wallClockMicros(), payload: $0, to: p) }
            }
            do throws(LogError) {
                try FileIO.pwriteAll(s.fd, buffer.bytes, at: s.size, path: path)
                try FileIO.sync(s.fd, path: path)
            } catch {
                try? FileIO.truncate(s.fd, to: s.size, path: path)
                throw error
            }
            s.size += Int64(buffer.count)
            s.sequence += Int64(offsets.count)
            for o in offsets { s.offsets[Key(group: group, topic: o.topic, partition: o.partition)] = o.offset }
            if s.size > compactBytes { try compact(&s) }
        }
    }

    /// Rewrites the journal as one entry per key: temporary file, fsync, rename.
    private func compact(_ s: inout State) throws(LogError) {
        let buffer = WriteBuffer()
        var seq: Int64 = 0
        for (k, v) in s.offsets {
            let payload = Self.encode(group: k.group, GroupOffset(topic: k.topic, partition: k.partition, offset: v))
            let p = buffer.claim(RecordFormat.headerSize + payload.count)
            payload.withUnsafeBytes { RecordFormat.write(offset: seq, timestamp: wallClockMicros(), payload: $0, to: p) }
            seq += 1
        }
        try FileIO.writeAtomically(path: path, bytes: Array(buffer.bytes))
        let fd = try FileIO.open(path, flags: O_RDWR)
        FileIO.close(s.fd)
        s.fd = fd
        s.size = Int64(buffer.count)
        s.sequence = seq
    }

    private static func encode(group: String, _ o: GroupOffset) -> [UInt8] {
        var out: [UInt8] = []
        let g = Array(group.utf8), t = Array(o.topic.utf8)
        out.appendLE(UInt16(g.count)); out += g
        out.appendLE(UInt16(t.count)); out += t
        out.appendLE(UInt32(o.partition))
        out.appendLE(UInt64(bitPattern: o.offset))
        return out
    }

    private static func decode(_ p: UnsafeRawBufferPointer) -> (Key, Int64)? {
        let bytes = Array(p)
        var at = 0
        func string() -> String? {
            guard at + 2 <= bytes.count else { return nil }
            let n = Int(bytes.loadLE(UInt16.self, at: at))
            at += 2
            guard at + n <= bytes.count else { return nil }
            defer { at += n }
            return String(decoding: bytes[at..<at + n], as: UTF8.self)
        }
        guard let group = string(), let topic = string(), at + 12 == bytes.count else { return nil }
        let partition = Int(bytes.loadLE(UInt32.self, at: at))
        let offset = Int64(bitPattern: bytes.loadLE(UInt64.self, at: at + 4))
        return (Key(group: group, topic: topic, partition: partition), offset)
    }
}
