import CoreMetrics
import Logging
import Synchronization

/// What every partition of one log shares: settings, the file cache, the writer and syncer threads.
final class LogContext: Sendable {
    let options: LogOptions
    let files: FileCache
    let indexes: IndexCache
    let writer: LogWriter
    let syncer: LogSyncer
    let logger: Logger
    let metrics: LogMetrics

    init(options: LogOptions, logger: Logger) {
        self.options = options
        self.logger = logger
        metrics = LogMetrics(factory: options.metricsFactory ?? MetricsSystem.factory)
        files = FileCache(capacity: options.maxOpenFiles)
        indexes = IndexCache(capacity: options.maxCachedIndexes)
        syncer = LogSyncer(files: files, logger: logger, metrics: metrics)
        writer = LogWriter()
    }
}

/// Keeps at most `capacity` sealed segment indexes in memory, dropping the least recently used, so
/// memory does not grow with the size of the log.
final class IndexCache: Sendable {
    private struct State {
        var loaded: [ObjectIdentifier: (segment: Segment, lastUse: UInt64)] = [:]
        var tick: UInt64 = 0
    }
    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) { self.capacity = max(capacity, 2) }

    func touch(_ segment: Segment) {
        let victims = state.withLock { s -> [Segment] in
            s.tick &+= 1
            s.loaded[ObjectIdentifier(segment)] = (segment, s.tick)
            guard s.loaded.count > capacity else { return [] }
            let drop = s.loaded.values.sorted { $0.lastUse < $1.lastUse }.prefix(s.loaded.count - capacity + capacity / 8)
            for d in drop { s.loaded.removeValue(forKey: ObjectIdentifier(d.segment)) }
            return drop.map(\.segment)
        }
        for v in victims {
            v.state.withLock { st in if st.sealed { st.index = nil } }
        }
    }

    func remove(_ segment: Segment) {
        _ = state.withLock { $0.loaded.removeValue(forKey: ObjectIdentifier(segment)) }
    }

    var count: Int { state.withLock { $0.loaded.count } }
}
