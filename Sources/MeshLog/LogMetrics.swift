import CoreMetrics

/// What the log records about itself through swift-metrics. Recorded once per written batch and
/// once per fdatasync on the writer and syncer threads — never per record — so the cost does not
/// grow with the event rate. Sizes and offsets per topic are read at scrape time instead.
struct LogMetrics: Sendable {
    /// Time of one batch's `pwrite` (all pending appends of one partition).
    let append: CoreMetrics.Timer
    /// Time of one `fdatasync` (the group commit of every batch written to one file since the last).
    let fsync: CoreMetrics.Timer
    let bytes: CoreMetrics.Counter
    let records: CoreMetrics.Counter
    let fsyncErrors: CoreMetrics.Counter

    init(factory: any MetricsFactory) {
        append = Timer(label: "meshgate_log_append_seconds", dimensions: [], preferredDisplayUnit: .seconds, factory: factory)
        fsync = Timer(label: "meshgate_log_fsync_seconds", dimensions: [], preferredDisplayUnit: .seconds, factory: factory)
        bytes = Counter(label: "meshgate_log_written_bytes_total", dimensions: [], factory: factory)
        records = Counter(label: "meshgate_log_written_records_total", dimensions: [], factory: factory)
        fsyncErrors = Counter(label: "meshgate_log_fsync_errors_total", dimensions: [], factory: factory)
    }
}
