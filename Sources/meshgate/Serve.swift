import ArgumentParser
import Foundation
import Logging
import MeshGateway

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway: the built-in log, the broker, routing and the HTTP and TCP listeners.",
        discussion: """
            Every option can also be set by an environment variable (MESHGATE_HTTP, MESHGATE_DATA, …) or a key \
            of the file given with --config (MESHGATE_CONFIG); flags win over variables, variables over the file. \
            See docs/operations.md.
            """)

    @Option(help: "HTTP listen address HOST:PORT (port 0 picks a free one; env MESHGATE_HTTP). Default 127.0.0.1:8080.")
    var http: String?
    @Option(help: "TCP listen address HOST:PORT (env MESHGATE_TCP). Default 127.0.0.1:7070.")
    var tcp: String?
    @Option(help: "Data directory of the built-in log (env MESHGATE_DATA). Default ./data.")
    var data: String?
    @Option(help: "Route files directory (env MESHGATE_ROUTES). Default ./routes.")
    var routes: String?
    @Option(help: "Server configuration file, meshgate.yaml (env MESHGATE_CONFIG).")
    var config: String?
    @Option(help: "Node (site) name (env MESHGATE_NODE). Default the host name.")
    var node: String?
    @Option(help: "Default durability of new topics: always, interval[:MS] or none (env MESHGATE_FSYNC). Default always.")
    var fsync: String?
    @Option(help: "Largest event data in bytes (env MESHGATE_MAX_EVENT_BYTES). Default 1048576.")
    var maxEventBytes: String?
    @Option(name: .customLong("max-inflight"), help: "Unanswered publishes per TCP connection (env MESHGATE_MAX_INFLIGHT). Default 1024.")
    var maxInFlight: String?
    @Option(help: "Largest structured or batch request body in bytes (env MESHGATE_MAX_BODY_BYTES). Default 8388608.")
    var maxBodyBytes: String?
    @Option(help: "Largest HTTP request head in bytes (env MESHGATE_MAX_HEADER_BYTES). Default 16384.")
    var maxHeaderBytes: String?
    // TLS and connection limits (docs/operations.md, "TLS" and "Limits").
    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain of the listeners; with --tls-key turns TLS on (env MESHGATE_TLS_CERT).")
    var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "PEM private key of --tls-cert (env MESHGATE_TLS_KEY).")
    var tlsKey: String?
    @Option(name: .customLong("tls-client-ca"), help: "PEM CA certificates; clients must present a certificate they issued: mutual TLS (env MESHGATE_TLS_CLIENT_CA).")
    var tlsClientCA: String?
    @Option(name: .customLong("tls-min-version"), help: "1.2 or 1.3 (env MESHGATE_TLS_MIN_VERSION). Default 1.2.")
    var tlsMinVersion: String?
    @Option(name: .customLong("tls-listeners"), help: "Listeners speaking TLS when it is on: http,tcp, http or tcp (env MESHGATE_TLS_LISTENERS). Default http,tcp.")
    var tlsListeners: String?
    @Option(name: .customLong("max-connections"), help: "Open connections per listener (env MESHGATE_MAX_CONNECTIONS). Default 10000.")
    var maxConnections: String?
    @Option(name: .customLong("max-connections-per-peer"), help: "Open connections per listener from one IP address (env MESHGATE_MAX_CONNECTIONS_PER_PEER). Default 1000.")
    var maxConnectionsPerPeer: String?
    @Option(name: .customLong("idle-timeout"), help: "Close HTTP keep-alive connections idle this long, e.g. 60s (env MESHGATE_IDLE_TIMEOUT). Default 60s.")
    var idleTimeout: String?
    @Option(name: .customLong("request-timeout"), help: "An HTTP request must arrive in full this long after its first byte, else 408 (env MESHGATE_REQUEST_TIMEOUT). Default 30s.")
    var requestTimeout: String?
    @Option(name: .customLong("max-frame-bytes"), help: "Largest TCP frame in bytes (env MESHGATE_MAX_FRAME_BYTES). Default max event bytes + 65536.")
    var maxFrameBytes: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical (env MESHGATE_LOG_LEVEL).")
    var logLevel: String?
    @Option(help: "text or json (env MESHGATE_LOG_FORMAT). Default text.")
    var logFormat: String?
    @Option(help: "on or off: serve GET /metrics and record the metrics behind it (env MESHGATE_METRICS). Default on.")
    var metrics: String?
    @Option(help: "on or off: require a bearer token or JWT and apply the ACLs of the config file's auth: section (env MESHGATE_AUTH). Default off.")
    var auth: String?
    @Option(name: .customLong("webhook-threads"), help: "libcurl threads of the webhook connectors (env MESHGATE_WEBHOOK_THREADS). Default 2 (1 on one core).")
    var webhookThreads: String?
    @Option(name: .customLong("bridge-topic"),
            help: "Topic of events other sites bridge here, a template of {topic}, {peer} (the sending site), {origin} (the first hop) and text, e.g. from/{peer}/{topic} (env MESHGATE_BRIDGE_TOPIC). Default {topic}.")
    var bridgeTopic: String?
    @Flag(help: "Allow listening beyond loopback with authentication off (env MESHGATE_ALLOW_INSECURE_REMOTE).")
    var allowInsecureRemote = false

    func run() async throws {
        var flags: [String: String] = [:]
        flags["--http"] = http
        flags["--tcp"] = tcp
        flags["--data"] = data
        flags["--routes"] = routes
        flags["--node"] = node
        flags["--fsync"] = fsync
        flags["--max-event-bytes"] = maxEventBytes
        flags["--max-inflight"] = maxInFlight
        flags["--max-body-bytes"] = maxBodyBytes
        flags["--max-header-bytes"] = maxHeaderBytes
        flags["--tls-cert"] = tlsCert
        flags["--tls-key"] = tlsKey
        flags["--tls-client-ca"] = tlsClientCA
        flags["--tls-min-version"] = tlsMinVersion
        flags["--tls-listeners"] = tlsListeners
        flags["--max-connections"] = maxConnections
        flags["--max-connections-per-peer"] = maxConnectionsPerPeer
        flags["--idle-timeout"] = idleTimeout
        flags["--request-timeout"] = requestTimeout
        flags["--max-frame-bytes"] = maxFrameBytes
        flags["--log-level"] = logLevel
        flags["--log-format"] = logFormat
        flags["--metrics"] = metrics
        flags["--auth"] = auth
        flags["--webhook-threads"] = webhookThreads
        flags["--bridge-topic"] = bridgeTopic
        if allowInsecureRemote { flags["--allow-insecure-remote"] = "true" }
        let settings: GatewayConfig
        do {
            settings = try GatewayConfig.load(flags: flags, configFile: config)
        } catch {
            throw UsageFailure(message: "configuration: \(error.message)")
        }
        bootstrapLogging(level: Logger.Level(rawValue: settings.logLevel) ?? .info,
                         format: MeshLogHandler.Format(rawValue: settings.logFormat) ?? .text)
        let metrics = GatewayMetrics(enabled: settings.metrics)
        bootstrapMetrics(metrics)
        let logger = Logger(label: "meshgate")
        let gateway: Gateway
        do {
            gateway = try Gateway(config: settings, logger: logger, metrics: metrics)
        } catch {
            logger.critical("cannot open the log in \(settings.dataDirectory): \(error.message)")
            throw ExitCode(1)
        }
        do {
            try await gateway.run()
        } catch {
            logger.critical("meshgate failed: \(error)")
            throw ExitCode(1)
        }
    }
}
