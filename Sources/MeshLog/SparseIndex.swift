/// The sparse indexes of one segment: every `indexIntervalBytes` of records, the offset index maps
/// an offset to its byte position and the time index maps an append time to an offset. Both are
/// kept in memory while a segment is active and written to `.index` / `.timeindex` when it is sealed.
struct SparseIndex: Sendable {
    /// (offset - baseOffset, byte position) pairs, both increasing.
    var positions: [(relative: UInt32, position: UInt32)] = []
    /// (append time, offset - baseOffset) pairs, both non-decreasing. A sealed segment's last entry
    /// is its newest record.
    var times: [(timestamp: Int64, relative: UInt32)] = []

    static let positionEntrySize = 8
    static let timeEntrySize = 12

    /// The byte position to start scanning from to find `relative`: the last entry at or before it.
    func position(before relative: UInt32) -> (relative: UInt32, position: Int64) {
        var lo = 0, hi = positions.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if positions[mid].relative <= relative { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? (0, 0) : (positions[lo - 1].relative, Int64(positions[lo - 1].position))
    }

    /// The last indexed offset whose append time is before `timestamp`: scanning from there finds
    /// the first record at or after it.
    func relativeOffset(before timestamp: Int64) -> UInt32 {
        var lo = 0, hi = times.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if times[mid].timestamp < timestamp { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? 0 : times[lo - 1].relative
    }

    var newestTimestamp: Int64? { times.last?.timestamp }

    func encodedPositions() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(positions.count * Self.positionEntrySize)
        for e in positions {
            out.appendLE(e.relative)
            out.appendLE(e.position)
        }
        return out
    }

    func encodedTimes() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(times.count * Self.timeEntrySize)
        for e in times {
            out.appendLE(UInt64(bitPattern: e.timestamp))
            out.appendLE(e.relative)
        }
        return out
    }

    /// Decodes index files; nil when they are damaged (wrong size, not increasing, past the segment),
    /// in which case the caller rebuilds the index by scanning the segment.
    static func decode(positions p: [UInt8], times t: [UInt8], segmentSize: Int64) -> SparseIndex? {
        guard p.count % positionEntrySize == 0, t.count % timeEntrySize == 0, !t.isEmpty || segmentSize == 0 else { return nil }
        var index = SparseIndex()
        index.positions.reserveCapacity(p.count / positionEntrySize)
        index.times.reserveCapacity(t.count / timeEntrySize)
        var i = 0
        while i < p.count {
            let rel = p.loadLE(UInt32.self, at: i), pos = p.loadLE(UInt32.self, at: i + 4)
            if let last = index.positions.last, rel <= last.relative || pos <= last.position { return nil }
            if Int64(pos) >= segmentSize { return nil }
            index.positions.append((rel, pos))
            i += positionEntrySize
        }
        i = 0
        while i < t.count {
            let ts = Int64(bitPattern: t.loadLE(UInt64.self, at: i)), rel = t.loadLE(UInt32.self, at: i + 8)
            if let last = index.times.last, ts < last.timestamp || rel < last.relative { return nil }
            index.times.append((ts, rel))
            i += timeEntrySize
        }
        return index
    }
}

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    @inline(__always)
    func loadLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        self.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }
}
