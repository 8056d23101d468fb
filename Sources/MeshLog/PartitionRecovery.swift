#if canImport(Glibc)
import Glibc
#endif

extension PartitionLog {
    /// Opens a partition directory, creating it if needed. Sealed segments are taken as they are
    /// (they were fsynced when sealed; reads verify every record). The newest segment is scanned
    /// record by record: the first torn or corrupt record and everything after it are cut off, and
    /// its index is rebuilt in memory. Recovery time is bounded by the size of one segment.
    static func open(topicName: String, index: Int, directory: String, config: TopicConfig,
                     context: LogContext) throws(LogError) -> PartitionLog {
        try FileIO.makeDirectories(directory)
        var bases: [Int64] = []
        for name in try FileIO.list(directory) {
            if name.hasSuffix(".tmp") {
                try FileIO.remove("\(directory)/\(name)")
            } else if name.hasSuffix(".log"), let base = Int64(name.dropLast(4)) {
                bases.append(base)
            }
        }
        bases.sort()
        if bases.isEmpty {
            let first = Segment(directory: directory, baseOffset: 0, size: 0, endOffset: 0, sealed: false, index: nil)
            let file = try context.files.acquire(first.logPath, create: true)
            context.files.release(file)
            try FileIO.syncDirectory(of: first.logPath)
            bases = [0]
        }

        var segments: [Segment] = []
        for (i, base) in bases.enumerated().dropLast() {
            let segment = Segment(directory: directory, baseOffset: base, size: 0, endOffset: bases[i + 1], sealed: true, index: nil)
            var st = stat()
            if stat(segment.logPath, &st) != 0 { throw .system("stat", path: segment.logPath, errno: errno) }
            segment.state.withLock { $0.size = Int64(st.st_size) }
            segments.append(segment)
        }

        // Verify the newest segment and rebuild its index.
        let base = bases.last!
        let active = Segment(directory: directory, baseOffset: base, size: 0, endOffset: base, sealed: false, index: SparseIndex())
        var sparse = SparseIndex()
        var next = base
        var first: Int64?
        var newest: Int64 = 0
        var lastIndexed: Int64 = 0
        let interval = Int64(context.options.indexIntervalBytes)
        let size: Int64 = try context.files.with(active.logPath) { (file) throws(LogError) in
            let length = try FileIO.fileSize(file.fd, path: active.logPath)
            let end = try Segment.scan(fd: file.fd, path: active.logPath, from: 0, limit: length, expectedOffset: base,
                                       maxRecordBytes: context.options.maxRecordBytes) { v in
                let rel = UInt32(v.offset - base)
                if v.position - lastIndexed >= interval {
                    sparse.positions.append((rel, UInt32(v.position)))
                    sparse.times.append((v.timestamp, rel))
                    lastIndexed = v.position
                }
                if first == nil { first = v.timestamp }
                newest = v.timestamp
                next = v.offset + 1
                return true
            }
            switch end {
            case .end(let position):
                return position
            case .stopped(let position):
                return position
            case .invalid(let position, let reason):
                context.logger.warning("\(topicName)[\(index)]: cutting \(length - position) bytes off \(active.logPath) at byte \(position): \(reason)")
                try FileIO.truncate(file.fd, to: position, path: active.logPath)
                try FileIO.sync(file.fd, path: active.logPath)
                return position
            }
        }
        // Stale index files of the active segment are rewritten when it is sealed.
        try FileIO.remove(active.indexPath)
        try FileIO.remove(active.timeIndexPath)
        active.state.withLock { st in
            st.size = size
            st.endOffset = next
            st.index = sparse
            st.firstTimestamp = first
            st.newestTimestamp = first == nil ? nil : newest
        }
        segments.append(active)
        let lastTimestamp = first == nil ? 0 : newest
        let writer = WriterState(segment: active, size: size, nextOffset: next, lastIndexedPosition: lastIndexed,
                                 lastTimestamp: lastTimestamp)
        return PartitionLog(topicName: topicName, index: index, directory: directory, config: config,
                            context: context, segments: segments, writer: writer)
    }

    // MARK: Retention

    /// Deletes the oldest sealed segments that are past the topic's age limit, or while the
    /// partition would still hold at least `retentionBytes` without them. Returns how many.
    @discardableResult
    func enforceRetention(now: Int64) throws(LogError) -> Int {
        guard config.retentionMicros != nil || config.retentionBytes != nil else { return 0 }
        let segments = shared.withLock { $0.segments }
        var total = segments.reduce(Int64(0)) { $0 + $1.size }
        var drop = 0
        for segment in segments.dropLast() {
            var expired = false
            if let age = config.retentionMicros, let newest = try newestTimestamp(of: segment) {
                expired = newest < now - age
            }
            if let bytes = config.retentionBytes, total - segment.size >= bytes { expired = true }
            guard expired else { break }
            total -= segment.size
            drop += 1
        }
        guard drop > 0 else { return 0 }
        let removed = shared.withLock { s -> [Segment] in
            let gone = Array(s.segments.prefix(drop))
            s.segments.removeFirst(drop)
            s.startOffset = s.segments[0].baseOffset
            return gone
        }
        for segment in removed {
            context.indexes.remove(segment)
            for path in [segment.logPath, segment.indexPath, segment.timeIndexPath] {
                context.files.forget(path)
                try FileIO.remove(path)
            }
        }
        context.logger.info("retention deleted \(drop) segment(s) of \(name); it now starts at offset \(startOffset)")
        return drop
    }

    /// Stops accepting appends and wakes every waiting reader.
    func close() {
        let woken = shared.withLock { s -> [@Sendable () -> Void] in
            s.closed = true
            let all = s.waiters.values.map(\.wake)
            s.waiters = [:]
            return all
        }
        for w in woken { w() }
    }

    /// Flushes the active segment (after the writer and syncer have stopped).
    func flush() throws(LogError) {
        let path = writer.segment.logPath
        try context.files.with(path) { (file) throws(LogError) in try FileIO.sync(file.fd, path: path) }
    }
}
