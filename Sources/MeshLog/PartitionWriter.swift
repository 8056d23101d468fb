/// The writer thread's side of a partition: encoding pending appends, writing them, rolling and
/// sealing segments. Only the writer thread calls these (recovery runs before it starts).
extension PartitionLog {
    /// Batches of at most this many records are acknowledged on the writer thread itself.
    static let inlineCompletionLimit = 8
    /// In `none` and `interval` mode, writeback of each this many bytes is started as they are
    /// written, so dirty pages never pile up into a long fsync and a stall of the writer.
    static let writebackBytes: Int64 = 1 << 20

    func writePending(_ buffer: WriteBuffer) {
        var items = writer.spare
        shared.withLock { s in
            swap(&items, &s.pending)
            s.queued = false
        }
        defer {
            items.removeAll(keepingCapacity: true)
            writer.spare = items
        }
        if let failure = shared.withLock({ $0.failure }) {
            let error = LogError(.failed, "\(name) stopped accepting writes after: \(failure.message)")
            for item in items { item.completion(.failure(error)) }
            return
        }
        let options = context.options
        var i = 0
        while i < items.count {
            let now = options.clock()
            do throws(LogError) {
                if shouldRoll(now: now) { try roll() }
                // Encode as many appends as fit in the segment (at least one).
                buffer.reset()
                let startPosition = writer.size
                let timestamp = max(now, writer.lastTimestamp)
                var next = writer.nextOffset
                var newEntries: [(relative: UInt32, position: UInt32, timestamp: Int64)] = []
                var completions: [(completion: @Sendable (Result<Int64, LogError>) -> Void, first: Int64)] = []
                var lastIndexed = writer.lastIndexedPosition
                let base = writer.segment.baseOffset
                var j = i
                while j < items.count {
                    if j > i && startPosition + Int64(buffer.count) >= options.segmentBytes { break }
                    let first = next
                    func put(_ payload: [UInt8], _ crc: UInt32) {
                        let position = startPosition + Int64(buffer.count)
                        if position - lastIndexed >= Int64(options.indexIntervalBytes) {
                            newEntries.append((UInt32(next - base), UInt32(position), timestamp))
                            lastIndexed = position
                        }
                        let p = buffer.claim(RecordFormat.headerSize + payload.count)
                        payload.withUnsafeBytes { RecordFormat.write(offset: next, timestamp: timestamp, payload: $0, payloadCRC: crc, to: p) }
                        next += 1
                    }
                    switch items[j].payloads {
                    case .one(let payload, let crc): put(payload, crc)
                    case .many(let payloads, let crcs): for k in payloads.indices { put(payloads[k], crcs[k]) }
                    }
                    completions.append((items[j].completion, first))
                    j += 1
                }

                let segment = writer.segment
                let file = try context.files.acquire(segment.logPath)
                let writeStarted = monotonicNanos()
                do {
                    try FileIO.pwriteAll(file.fd, buffer.bytes, at: startPosition, path: segment.logPath)
                    let metrics = context.metrics
                    metrics.append.recordNanoseconds(Int64(monotonicNanos() - writeStarted))
                    metrics.bytes.increment(by: buffer.count)
                    metrics.records.increment(by: Int(next - writer.nextOffset))
                } catch {
                    undoPartialWrite(file: file, to: startPosition)
                    context.files.release(file)
                    throw error
                }
                let endPosition = startPosition + Int64(buffer.count)
                if config.durability != .always && endPosition - writer.writebackFrom >= Self.writebackBytes {
                    FileIO.startWriteback(file.fd, from: writer.writebackFrom, count: endPosition - writer.writebackFrom)
                    writer.writebackFrom = endPosition
                }
                writer.size = endPosition
                writer.nextOffset = next
                writer.lastIndexedPosition = lastIndexed
                writer.lastTimestamp = timestamp
                segment.state.withLock { st in
                    st.size = endPosition
                    st.endOffset = next
                    if st.firstTimestamp == nil { st.firstTimestamp = timestamp }
                    st.newestTimestamp = timestamp
                    for e in newEntries {
                        st.index?.positions.append((e.relative, e.position))
                        st.index?.times.append((e.timestamp, e.relative))
                    }
                }

                switch config.durability {
                case .always:
                    context.syncer.submit(SyncJob(partition: self, file: file, segment: base, endOffset: next,
                                                  endPosition: endPosition, needsSync: true, completions: completions))
                case .interval, .none:
                    if case .interval(let ms) = config.durability {
                        context.syncer.markDirty(self, path: segment.logPath, deadline: monotonicNanos() + UInt64(ms) * 1_000_000)
                    }
                    if next - completions[0].first <= Self.inlineCompletionLimit {
                        // Light load: acknowledge here, saving a thread hop of latency.
                        context.files.release(file)
                        publish(endOffset: next, segment: base, bytes: endPosition)
                        for c in completions { c.completion(.success(c.first)) }
                    } else {
                        // Heavy load: the sync thread acknowledges, so the completion handlers
                        // (which often append again) run beside the next write instead of before it.
                        context.syncer.submit(SyncJob(partition: self, file: file, segment: base, endOffset: next,
                                                      endPosition: endPosition, needsSync: false, completions: completions))
                    }
                }
                i = j
            } catch {
                context.logger.warning("append to \(name) failed: \(error.message)")
                for item in items[i...] { item.completion(.failure(error)) }
                return
            }
        }
    }

    /// After a failed write, cut the file back so no part of the failed batch can surface later.
    private func undoPartialWrite(file: OpenFile, to position: Int64) {
        do {
            try FileIO.truncate(file.fd, to: position, path: file.path)
        } catch {
            // The file may hold part of a batch its producers were told failed: stop writing here
            // rather than risk it reappearing.
            fail(error)
        }
    }

    private func shouldRoll(now: Int64) -> Bool {
        if writer.size >= context.options.segmentBytes { return true }
        guard writer.size > 0, let first = writer.segment.state.withLock({ $0.firstTimestamp }) else { return false }
        return now - first >= context.options.segmentAgeMicros
    }

    /// Seals the active segment (fsync, index files) and starts a new one at the next offset.
    /// Sealed segments are always durable, so recovery only ever verifies the newest segment.
    func roll() throws(LogError) {
        let old = writer.segment
        try context.files.with(old.logPath) { (file) throws(LogError) in try FileIO.sync(file.fd, path: old.logPath) }
        var index = old.state.withLock { $0.index } ?? SparseIndex()
        if writer.nextOffset > old.baseOffset {
            let last = UInt32(writer.nextOffset - 1 - old.baseOffset)
            if index.times.last?.relative != last || index.times.last?.timestamp != writer.lastTimestamp {
                index.times.append((writer.lastTimestamp, last))
            }
        }
        try FileIO.writeAtomically(path: old.indexPath, bytes: index.encodedPositions())
        try FileIO.writeAtomically(path: old.timeIndexPath, bytes: index.encodedTimes())
        old.state.withLock { st in
            st.sealed = true
            st.index = index
            st.size = writer.size
            st.endOffset = writer.nextOffset
        }
        context.indexes.touch(old)

        let fresh = Segment(directory: directory, baseOffset: writer.nextOffset, size: 0, endOffset: writer.nextOffset,
                            sealed: false, index: SparseIndex())
        let file = try context.files.acquire(fresh.logPath, create: true)
        context.files.release(file)
        try FileIO.syncDirectory(of: fresh.logPath)
        shared.withLock { $0.segments.append(fresh) }
        writer.segment = fresh
        writer.size = 0
        writer.writebackFrom = 0
        writer.lastIndexedPosition = 0
        context.logger.debug("\(name) rolled to segment \(fresh.baseOffset)")
    }

    /// Stops the partition from accepting writes after a storage failure that may have lost data
    /// not yet acknowledged (a failed fsync leaves the page cache in an unknown state).
    func fail(_ error: LogError) {
        shared.withLock { s in
            if s.failure == nil { s.failure = error }
        }
        context.logger.error("\(name) stopped accepting writes: \(error.message)")
    }

    /// The index of a segment: the live one for the active segment, loaded (or rebuilt) for sealed ones.
    func index(of segment: Segment) throws(LogError) -> SparseIndex {
        let (loaded, sealed, size) = segment.state.withLock { ($0.index, $0.sealed, $0.size) }
        if let loaded {
            if sealed { context.indexes.touch(segment) }
            return loaded
        }
        var index: SparseIndex?
        if FileIO.exists(segment.indexPath) && FileIO.exists(segment.timeIndexPath) {
            index = SparseIndex.decode(positions: try FileIO.read(path: segment.indexPath),
                                       times: try FileIO.read(path: segment.timeIndexPath), segmentSize: size)
        }
        if index == nil {
            context.logger.notice("rebuilding the index of \(segment.logPath)")
            let rebuilt = try rebuildIndex(of: segment, size: size)
            try FileIO.writeAtomically(path: segment.indexPath, bytes: rebuilt.encodedPositions())
            try FileIO.writeAtomically(path: segment.timeIndexPath, bytes: rebuilt.encodedTimes())
            index = rebuilt
        }
        segment.state.withLock { $0.index = index }
        context.indexes.touch(segment)
        return index!
    }

    /// Scans a sealed segment to build its index. A damaged record stops the index there: reads
    /// past it report the corruption instead of serving it.
    func rebuildIndex(of segment: Segment, size: Int64) throws(LogError) -> SparseIndex {
        var index = SparseIndex()
        var lastIndexed: Int64 = 0
        var newest: (Int64, UInt32)?
        let interval = Int64(context.options.indexIntervalBytes)
        _ = try context.files.with(segment.logPath) { (file) throws(LogError) in
            try Segment.scan(fd: file.fd, path: segment.logPath, from: 0, limit: size, expectedOffset: segment.baseOffset,
                             maxRecordBytes: context.options.maxRecordBytes) { v in
                let rel = UInt32(v.offset - segment.baseOffset)
                if v.position - lastIndexed >= interval {
                    index.positions.append((rel, UInt32(v.position)))
                    index.times.append((v.timestamp, rel))
                    lastIndexed = v.position
                }
                newest = (v.timestamp, rel)
                return true
            }
        }
        if let newest, index.times.last?.relative != newest.1 { index.times.append(newest) }
        return index
    }
}
