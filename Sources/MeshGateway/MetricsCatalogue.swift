/// Every metric the gateway exports: its name, type, help text and labels. One table so the
/// `/metrics` output, the histogram buckets and docs/operations.md cannot drift apart — the test
/// suite checks each scraped family is listed here.
public struct MetricInfo: Sendable {
    public enum Kind: String, Sendable { case counter, gauge, histogram }
    public let name: String
    public let kind: Kind
    public let help: String
    public let labels: [String]

    init(_ name: String, _ kind: Kind, _ help: String, labels: [String] = []) {
        self.name = name
        self.kind = kind
        self.help = help
        self.labels = labels
    }
}

public enum MetricsCatalogue {
    /// Most topics that get their own series; the rest are summed under `topic="_other"` (largest
    /// topics by bytes keep their own). Routes and connectors come from route files, so they are
    /// bounded by what the operator wrote.
    public static let maxTopicSeries = 100

    /// Latency buckets, seconds: 50 µs to 10 s (publish acknowledgement spans fsync times).
    static let latencyBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(10),
    ]

    public static let all: [MetricInfo] = [
        // Recorded as events flow (swift-metrics, from MeshBroker and MeshLog).
        .init("meshgate_publish_events_total", .counter, "Events acknowledged as durable, by API.", labels: ["api"]),
        .init("meshgate_publish_bytes_total", .counter, "Event data bytes acknowledged as durable, by API.", labels: ["api"]),
        .init("meshgate_publish_seconds", .histogram, "Time from accepting a publish request to its acknowledgement (durable), by API.", labels: ["api"]),
        .init("meshgate_publish_errors_total", .counter, "Publish requests refused or failed, by API and error code.", labels: ["api", "code"]),
        .init("meshgate_log_append_seconds", .histogram, "Time of one batched write of a partition's pending appends."),
        .init("meshgate_log_fsync_seconds", .histogram, "Time of one fdatasync (a group commit covering every batch written to the file since the last)."),
        .init("meshgate_log_written_bytes_total", .counter, "Bytes written to log segments (record headers included)."),
        .init("meshgate_log_written_records_total", .counter, "Records written to log segments."),
        .init("meshgate_log_fsync_errors_total", .counter, "Failed fsyncs (the partition stops accepting writes)."),
        // Read at scrape time from the log, the routing engine and the process.
        .init("meshgate_build_info", .gauge, "Always 1; the version and node name as labels.", labels: ["version", "node"]),
        .init("meshgate_uptime_seconds", .gauge, "Seconds since the gateway started."),
        .init("meshgate_ready", .gauge, "1 when /readyz answers 200."),
        .init("meshgate_topics", .gauge, "Topics in the log."),
        .init("meshgate_topic_partitions", .gauge, "Partitions of a topic.", labels: ["topic"]),
        .init("meshgate_topic_segments", .gauge, "Segment files of a topic.", labels: ["topic"]),
        .init("meshgate_topic_bytes", .gauge, "Bytes of a topic's segments on disk.", labels: ["topic"]),
        .init("meshgate_topic_end_offset", .gauge, "Sum over a topic's partitions of the next offset to be written (events ever appended).", labels: ["topic"]),
        .init("meshgate_topic_retained_events", .gauge, "Events a topic still holds (end offset minus start offset, summed over partitions).", labels: ["topic"]),
        .init("meshgate_log_open_files", .gauge, "File descriptors the log holds open."),
        .init("meshgate_routes_loaded", .gauge, "1 when a route table is loaded."),
        .init("meshgate_routes_generation", .gauge, "Generation of the running route table (increments on each successful reload)."),
        .init("meshgate_routes_reloads_total", .counter, "Route reloads attempted."),
        .init("meshgate_routes_reload_failures_total", .counter, "Route reloads rejected (the running table stayed)."),
        .init("meshgate_route_read_total", .counter, "Events a route destination read from the log.", labels: ["route", "destination"]),
        .init("meshgate_route_matched_total", .counter, "Events that matched the route's filter.", labels: ["route", "destination"]),
        .init("meshgate_route_delivered_total", .counter, "Events the destination accepted.", labels: ["route", "destination"]),
        .init("meshgate_route_retries_total", .counter, "Failed delivery attempts (each one is retried or dead-lettered).", labels: ["route", "destination"]),
        .init("meshgate_route_dead_lettered_total", .counter, "Events given up on and written to the dead-letter topic.", labels: ["route", "destination"]),
        .init("meshgate_route_filter_errors_total", .counter, "Filter evaluations that raised an error (counted as no match).", labels: ["route", "destination"]),
        .init("meshgate_route_in_flight", .gauge, "Matched events neither delivered nor dead-lettered yet.", labels: ["route", "destination"]),
        .init("meshgate_route_lag_events", .gauge, "Events in the log the destination has not committed yet.", labels: ["route", "destination"]),
        .init("meshgate_route_lag_seconds", .gauge, "Age of the oldest event the destination has not committed yet.", labels: ["route", "destination"]),
        .init("meshgate_route_waiting", .gauge, "1 when the destination cannot run (no connector runtime, undeclared connector).", labels: ["route", "destination"]),
        .init("meshgate_connector_state", .gauge, "1 for the connector's current state (running, connecting, down, no_runtime, ...).", labels: ["connector", "type", "state"]),
        .init("meshgate_auth_failures_total", .counter, "Credentials refused (HTTP 401, TCP authentication_failed), by reason.", labels: ["reason"]),
        .init("meshgate_acl_denials_total", .counter, "Requests refused by an identity's ACL (HTTP 403, TCP forbidden), by operation.", labels: ["operation"]),
        .init("meshgate_rate_limited_total", .counter, "Publish requests refused for exceeding the identity's publish rate (HTTP 429, TCP overloaded)."),
        .init("process_resident_memory_bytes", .gauge, "Resident memory (VmRSS of /proc/self/status)."),
        .init("process_virtual_memory_bytes", .gauge, "Virtual memory (VmSize of /proc/self/status)."),
        .init("process_open_fds", .gauge, "Open file descriptors (entries of /proc/self/fd)."),
        .init("process_max_fds", .gauge, "The open files limit (RLIMIT_NOFILE)."),
        .init("process_cpu_seconds_total", .counter, "User and system CPU time."),
        .init("process_start_time_seconds", .gauge, "Start time of the process, seconds since the epoch."),
    ]

    static let byName: [String: MetricInfo] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })
}
