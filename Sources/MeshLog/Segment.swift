#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// One segment of a partition: `<base offset>.log` with its `.index` and `.timeindex`. All but the
/// newest segment of a partition are sealed: fsynced, indexed on disk, never written again.
final class Segment: Sendable {
    struct State {
        /// Bytes of verified records. For the active segment it grows as the writer appends.
        var size: Int64
        /// The offset after the segment's last record.
        var endOffset: Int64
        var sealed: Bool
        /// Loaded on demand for sealed segments (and dropped again by the index cache).
        var index: SparseIndex?
        /// Append time of the segment's first record, for rolling by age.
        var firstTimestamp: Int64?
        /// Append time of the newest record (for the active segment; sealed ones keep it in the time index).
        var newestTimestamp: Int64?
    }

    let baseOffset: Int64
    let logPath: String
    let indexPath: String
    let timeIndexPath: String
    let state: Mutex<State>

    init(directory: String, baseOffset: Int64, size: Int64, endOffset: Int64, sealed: Bool, index: SparseIndex?) {
        self.baseOffset = baseOffset
        let name = Segment.fileName(baseOffset)
        logPath = "\(directory)/\(name).log"
        indexPath = "\(directory)/\(name).index"
        timeIndexPath = "\(directory)/\(name).timeindex"
        state = Mutex(State(size: size, endOffset: endOffset, sealed: sealed, index: index, firstTimestamp: nil, newestTimestamp: nil))
    }

    static func fileName(_ base: Int64) -> String {
        let digits = String(base)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    var size: Int64 { state.withLock { $0.size } }
    var endOffset: Int64 { state.withLock { $0.endOffset } }

    // MARK: Scanning

    enum ScanEnd: Equatable {
        /// Reached `limit` exactly on a record boundary.
        case end(position: Int64)
        /// The visitor asked to stop before the record at `position`.
        case stopped(position: Int64)
        /// The bytes at `position` are not a valid record, or a record runs past `limit`.
        case invalid(position: Int64, reason: String)
    }

    /// What a scan hands the visitor for each verified record.
    struct Visit {
        let offset: Int64
        let timestamp: Int64
        let payload: UnsafeRawBufferPointer
        let position: Int64
        let size: Int
    }

    /// Reads and verifies records from `position` up to `limit` bytes, calling `visit` for each in
    /// order until it returns false. Records must carry consecutive offsets starting at
    /// `expectedOffset` when it is given.
    static func scan(fd: Int32, path: String, from position: Int64, limit: Int64, expectedOffset: Int64?,
                     maxRecordBytes: Int, chunkBytes: Int = 1 << 20,
                     visit: (Visit) -> Bool) throws(LogError) -> ScanEnd {
        var pos = position
        var expected = expectedOffset
        var chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: 16)
        defer { chunk.deallocate() }
        while pos < limit {
            let want = Int(min(Int64(chunk.count), limit - pos))
            let got = try FileIO.preadUpTo(fd, UnsafeMutableRawBufferPointer(rebasing: chunk[0..<want]), at: pos, path: path)
            if got == 0 { return .invalid(position: pos, reason: "the file ends at \(pos), before \(limit)") }
            let bytes = UnsafeRawBufferPointer(rebasing: chunk[0..<got])
            var consumed = 0
            parsing: while consumed < got {
                switch RecordFormat.parse(bytes, at: consumed, maxRecordBytes: maxRecordBytes) {
                case .record(let offset, let timestamp, let payload, let size):
                    let at = pos + Int64(consumed)
                    if let e = expected, offset != e {
                        return .invalid(position: at, reason: "offset \(offset) where \(e) was expected")
                    }
                    let v = Visit(offset: offset, timestamp: timestamp,
                                  payload: UnsafeRawBufferPointer(rebasing: bytes[payload]), position: at, size: size)
                    if !visit(v) { return .stopped(position: at) }
                    expected = offset + 1
                    consumed += size
                case .incomplete(let needed):
                    let at = pos + Int64(consumed)
                    if at + Int64(needed) > limit || got < want {
                        return .invalid(position: at, reason: "a record runs past the end of the data")
                    }
                    if consumed == 0 {
                        // A record larger than the chunk: grow the chunk to hold it.
                        chunk.deallocate()
                        chunk = .allocate(byteCount: needed, alignment: 16)
                    }
                    break parsing
                case .invalid(let reason):
                    return .invalid(position: pos + Int64(consumed), reason: reason)
                }
            }
            pos += Int64(consumed)
        }
        return .end(position: pos)
    }
}
