import Synchronization

/// A record read back from the log.
public struct LogRecord: Sendable, Equatable {
    public let offset: Int64
    /// Append time, microseconds since the Unix epoch.
    public let timestamp: Int64
    public let payload: [UInt8]
}

/// One append request: one record or a batch that receives consecutive offsets.
struct PendingAppend: Sendable {
    /// Payloads with their checksums, computed on the producer's thread.
    enum Payloads: Sendable {
        case one([UInt8], UInt32)
        case many([[UInt8]], [UInt32])
    }
    let payloads: Payloads
    /// Receives the offset of the first record, once the append is as durable as the topic asks.
    let completion: @Sendable (Result<Int64, LogError>) -> Void

    var count: Int {
        switch payloads {
        case .one: 1
        case .many(let all, _): all.count
        }
    }
}

/// One partition of a topic: an ordered run of segments, the queue of appends waiting for the
/// writer thread, and the readers waiting for new records.
///
/// Locking: `shared` guards what producers, readers and the writer/syncer threads all touch. The
/// `writer` state is touched only by the writer thread (and by recovery before it starts).
public final class PartitionLog: @unchecked Sendable {
    struct Shared {
        var pending: [PendingAppend] = []
        /// True while the partition sits in the writer's queue.
        var queued = false
        var segments: [Segment]
        var startOffset: Int64
        /// Records before this offset are readable (durable as the topic's mode asks).
        var visibleEnd: Int64
        /// The segment holding `visibleEnd` and the readable bytes within it.
        var visibleSegment: Int64
        var visibleBytes: Int64
        var waiters: [UInt64: (after: Int64, wake: @Sendable () -> Void)] = [:]
        var cancelledWaiters: Set<UInt64> = []
        var nextWaiterID: UInt64 = 0
        /// Set after a failed fsync or a write that could not be undone: appends fail until reopen.
        var failure: LogError?
        var closed = false
    }

    /// The writer thread's own view of the active segment.
    struct WriterState {
        var segment: Segment
        var size: Int64
        var nextOffset: Int64
        var lastIndexedPosition: Int64
        var lastTimestamp: Int64
        var spare: [PendingAppend] = []
        /// In `none` and `interval` mode: where in the active segment writeback was last started.
        var writebackFrom: Int64 = 0
    }

    public let topicName: String
    public let index: Int
    let directory: String
    let config: TopicConfig
    let context: LogContext
    let shared: Mutex<Shared>
    var writer: WriterState

    init(topicName: String, index: Int, directory: String, config: TopicConfig, context: LogContext,
         segments: [Segment], writer: WriterState) {
        self.topicName = topicName
        self.index = index
        self.directory = directory
        self.config = config
        self.context = context
        self.writer = writer
        self.shared = Mutex(Shared(segments: segments, startOffset: segments[0].baseOffset,
                                   visibleEnd: writer.nextOffset, visibleSegment: writer.segment.baseOffset,
                                   visibleBytes: writer.size))
    }

    var name: String { "\(topicName)[\(index)]" }

    // MARK: Appending

    /// Queues one record; `completion` gets its offset once it is durable per the topic's mode.
    public func append(_ payload: [UInt8], completion: @escaping @Sendable (Result<Int64, LogError>) -> Void) {
        let crc = payload.withUnsafeBytes(RecordFormat.payloadChecksum)
        enqueue(PendingAppend(payloads: .one(payload, crc), completion: completion), largest: payload.count)
    }

    /// Queues a batch that gets consecutive offsets; `completion` gets the first one.
    public func append(batch: [[UInt8]], completion: @escaping @Sendable (Result<Int64, LogError>) -> Void) {
        if batch.isEmpty {
            completion(.success(endOffset))
            return
        }
        let crcs = batch.map { $0.withUnsafeBytes(RecordFormat.payloadChecksum) }
        enqueue(PendingAppend(payloads: .many(batch, crcs), completion: completion), largest: batch.lazy.map { $0.count }.max() ?? 0)
    }

    public func append(_ payload: [UInt8]) async throws(LogError) -> Int64 {
        try await Self.awaiting { append(payload, completion: $0) }
    }

    public func append(batch: [[UInt8]]) async throws(LogError) -> Int64 {
        try await Self.awaiting { append(batch: batch, completion: $0) }
    }

    static func awaiting(_ start: (@escaping @Sendable (Result<Int64, LogError>) -> Void) -> Void) async throws(LogError) -> Int64 {
        let result: Result<Int64, LogError> = await withUnsafeContinuation { cont in
            start { cont.resume(returning: $0) }
        }
        return try result.get()
    }

    private func enqueue(_ item: PendingAppend, largest: Int) {
        if largest > context.options.maxRecordBytes {
            item.completion(.failure(LogError(.recordTooLarge, "a record of \(largest) bytes exceeds the limit of \(context.options.maxRecordBytes)")))
            return
        }
        enum Outcome { case queued, wakeWriter, failed(LogError) }
        let outcome = shared.withLock { s -> Outcome in
            if s.closed { return .failed(LogError(.closed, "the log is closed")) }
            if let failure = s.failure { return .failed(LogError(.failed, "\(name) stopped accepting writes after: \(failure.message)")) }
            s.pending.append(item)
            if s.queued { return .queued }
            s.queued = true
            return .wakeWriter
        }
        switch outcome {
        case .queued: break
        case .wakeWriter: context.writer.enqueue(self)
        case .failed(let error): item.completion(.failure(error))
        }
    }

    // MARK: Reading

    /// The first retained offset.
    public var startOffset: Int64 { shared.withLock { $0.startOffset } }
    /// The offset the next readable record will get: records below it can be read.
    public var endOffset: Int64 { shared.withLock { $0.visibleEnd } }

    /// Segments on disk and their bytes (records of the active segment included as written), for
    /// the admin API and metrics. Takes each segment's lock briefly; not for a hot path.
    public var storage: (segments: Int, bytes: Int64) {
        let segments = shared.withLock { $0.segments }
        return (segments.count, segments.reduce(0) { $0 + $1.size })
    }

    /// Reads up to `maxRecords` records (and about `maxBytes` of payload, at least one record)
    /// starting at `offset`. Returns an empty array at the end of the log. Every record returned
    /// has passed its checksum.
    public func read(from offset: Int64, maxRecords: Int = 1000, maxBytes: Int = 1 << 20) throws(LogError) -> [LogRecord] {
        let (segments, start, end, visibleSegment, visibleBytes) = shared.withLock {
            ($0.segments, $0.startOffset, $0.visibleEnd, $0.visibleSegment, $0.visibleBytes)
        }
        if offset < start || offset > end {
            throw LogError(.offsetOutOfRange, "offset \(offset) is outside \(name)'s retained range \(start)..<\(end)")
        }
        var records: [LogRecord] = []
        var bytes = 0
        var next = offset
        var si = Self.segmentIndex(containing: offset, in: segments)
        while si < segments.count, next < end, records.count < maxRecords {
            let segment = segments[si]
            if segment.baseOffset > visibleSegment { break }
            let limit = segment.baseOffset == visibleSegment ? visibleBytes : segment.size
            let from = try scanStart(in: segment, for: next)
            var full = false
            let scanned: Segment.ScanEnd
            do {
                scanned = try context.files.with(segment.logPath) { (file) throws(LogError) in
                    try Segment.scan(fd: file.fd, path: segment.logPath, from: from.position, limit: limit,
                                     expectedOffset: from.offset, maxRecordBytes: context.options.maxRecordBytes) { v in
                        if v.offset < next { return true }
                        if v.offset >= end || records.count >= maxRecords || (bytes + v.payload.count > maxBytes && !records.isEmpty) {
                            full = true
                            return false
                        }
                        records.append(LogRecord(offset: v.offset, timestamp: v.timestamp, payload: Array(v.payload)))
                        bytes += v.payload.count
                        next = v.offset + 1
                        return true
                    }
                }
            } catch {
                // Retention may have deleted the segment under us.
                if segment.baseOffset < startOffset { throw LogError(.offsetOutOfRange, "offset \(next) of \(name) was deleted by retention") }
                throw error
            }
            if case .invalid(let position, let reason) = scanned {
                context.logger.error("corrupt record in \(segment.logPath) at byte \(position): \(reason)")
                throw LogError(.corrupt, "\(name): the record at byte \(position) of \(segment.logPath) is corrupt (\(reason)); it is not served")
            }
            if full { break }
            si += 1
        }
        return records
    }

    /// The offset of the first record appended at or after `timestamp` (microseconds), or the end
    /// offset when there is none.
    public func offset(atOrAfter timestamp: Int64) throws(LogError) -> Int64 {
        let (segments, end) = shared.withLock { ($0.segments, $0.visibleEnd) }
        // Append times never decrease within a partition, so the segments can be bisected.
        var lo = 0, hi = segments.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if let newest = try newestTimestamp(of: segments[mid]), newest < timestamp { lo = mid + 1 } else { hi = mid }
        }
        guard lo < segments.count else { return end }
        let segment = segments[lo]
        let index = try self.index(of: segment)
        let relative = index.relativeOffset(before: timestamp)
        var found: Int64?
        var from = try scanStart(in: segment, for: segment.baseOffset + Int64(relative))
        if from.offset > segment.baseOffset + Int64(relative) { from = (segment.baseOffset, 0) }
        let limit = segment.size
        _ = try context.files.with(segment.logPath) { (file) throws(LogError) in
            try Segment.scan(fd: file.fd, path: segment.logPath, from: from.position, limit: limit,
                             expectedOffset: from.offset, maxRecordBytes: context.options.maxRecordBytes) { v in
                if v.timestamp >= timestamp {
                    found = v.offset
                    return false
                }
                return true
            }
        }
        return min(found ?? segment.endOffset, end)
    }

    /// Waits until a record at or after `offset` is readable (or the log closes, or the task is
    /// cancelled). Does not poll: the writer wakes it.
    public func waitForData(beyond offset: Int64) async {
        let id = shared.withLock { s -> UInt64 in
            s.nextWaiterID += 1
            return s.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (cont: UnsafeContinuation<Void, Never>) in
                let ready = shared.withLock { s -> Bool in
                    if s.visibleEnd > offset || s.closed || s.cancelledWaiters.remove(id) != nil { return true }
                    s.waiters[id] = (offset, { cont.resume() })
                    return false
                }
                if ready { cont.resume() }
            }
        } onCancel: {
            let waiter = shared.withLock { s -> (@Sendable () -> Void)? in
                if let w = s.waiters.removeValue(forKey: id) { return w.wake }
                s.cancelledWaiters.insert(id)
                return nil
            }
            waiter?()
        }
        shared.withLock { _ = $0.cancelledWaiters.remove(id) }
    }

    /// Calls `wake` once (on an arbitrary thread) when a record at or after `offset` is readable
    /// or the log closes. For event-loop code that cannot await. Returns a token for
    /// `cancelNotify`, or nil when `wake` was called at once.
    @discardableResult
    public func notify(beyond offset: Int64, _ wake: @escaping @Sendable () -> Void) -> UInt64? {
        let id = shared.withLock { s -> UInt64? in
            if s.visibleEnd > offset || s.closed { return nil }
            s.nextWaiterID += 1
            s.waiters[s.nextWaiterID] = (offset, wake)
            return s.nextWaiterID
        }
        if id == nil { wake() }
        return id
    }

    /// Withdraws a `notify` that has not fired; its callback will not be called.
    public func cancelNotify(_ token: UInt64) {
        _ = shared.withLock { $0.waiters.removeValue(forKey: token) }
    }

    /// Makes records up to `endOffset` readable and wakes the readers waiting for them.
    func publish(endOffset: Int64, segment: Int64, bytes: Int64) {
        let woken = shared.withLock { s -> [@Sendable () -> Void] in
            guard endOffset > s.visibleEnd else { return [] }
            s.visibleEnd = endOffset
            s.visibleSegment = segment
            s.visibleBytes = bytes
            guard !s.waiters.isEmpty else { return [] }
            var wake: [@Sendable () -> Void] = []
            for (id, w) in s.waiters where w.after < endOffset {
                wake.append(w.wake)
                s.waiters.removeValue(forKey: id)
            }
            return wake
        }
        for w in woken { w() }
    }

    static func segmentIndex(containing offset: Int64, in segments: [Segment]) -> Int {
        var lo = 0, hi = segments.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if segments[mid].baseOffset <= offset { lo = mid + 1 } else { hi = mid }
        }
        return max(lo - 1, 0)
    }

    /// Where to start scanning a segment to reach `offset`: an indexed record at or before it.
    func scanStart(in segment: Segment, for offset: Int64) throws(LogError) -> (offset: Int64, position: Int64) {
        let relative = UInt32(clamping: max(offset - segment.baseOffset, 0))
        let entry = try index(of: segment).position(before: relative)
        return (segment.baseOffset + Int64(entry.relative), entry.position)
    }

    func newestTimestamp(of segment: Segment) throws(LogError) -> Int64? {
        let (sealed, newest) = segment.state.withLock { ($0.sealed, $0.newestTimestamp) }
        return sealed ? try index(of: segment).newestTimestamp : newest
    }
}
