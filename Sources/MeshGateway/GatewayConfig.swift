import Foundation
import MeshAuth
import MeshBridge
import MeshCore
import MeshLog
import MeshNet
import Yams

/// A listen address, `HOST:PORT` (`[::1]:PORT` for IPv6). Port 0 picks a free port.
public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// nil when `text` is not `HOST:PORT` with a port in 0...65535.
    public init?(parsing text: String) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, !host.contains(where: \.isWhitespace), let port = Int(portText), (0...65535).contains(port) else { return nil }
        self.host = String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Loopback only: `localhost`, `127.0.0.0/8`, `::1`.
    public var isLoopback: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// Why a configuration was refused; the message names the flag, variable or `file:line:column`.
public struct ConfigError: MeshError, Equatable {
    public let message: String
    public var code: String { "config.invalid" }
    public init(_ message: String) { self.message = message }
}

/// Every setting of `meshgate serve`. Each one can be given as a flag, an environment variable
/// (`MESHGATE_*`) or a key of the optional `meshgate.yaml`; a flag beats the environment, which
/// beats the file, which beats the default. docs/operations.md has the table.
public struct GatewayConfig: Sendable, Equatable {
    public var node: String = GatewayConfig.defaultNodeName()
    public var http = HostPort(host: "127.0.0.1", port: 8080)
    public var tcp = HostPort(host: "127.0.0.1", port: 7070)
    /// Unanswered publishes one TCP connection may have (more get `overloaded`, not a close).
    public var maxInFlight = 1024
    public var dataDirectory = "./data"
    public var routesDirectory = "./routes"
    /// The durability of topics created without their own (SPEC §2).
    public var fsync: Durability = .always
    /// Largest event data accepted (SPEC §8).
    public var maxEventBytes = 1 << 20
    /// Largest structured-mode or batch request body.
    public var maxBodyBytes = 8 << 20
    /// Largest HTTP request head.
    public var maxHeaderBytes = 16 << 10
    // TLS and connection limits (docs/operations.md, "TLS" and "Limits").
    /// PEM certificate chain and key of the listeners; both set turns TLS on.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// PEM CA certificates client certificates must chain to; set turns mutual TLS on.
    public var tlsClientCA: String?
    public var tlsMinimumVersion: TLSMinimumVersion = .tls12
    /// The listeners that speak TLS when it is on.
    public var tlsListeners: [String] = ["http", "tcp"]
    /// Open connections per listener, in total and from one peer address.
    public var maxConnections = 10_000
    public var maxConnectionsPerPeer = 1_000
    /// An HTTP keep-alive connection with no request for this long is closed.
    public var idleTimeoutMilliseconds = 60_000
    /// An HTTP request's head and body must arrive within this long of its first byte (408).
    public var requestTimeoutMilliseconds = 30_000
    /// Largest TCP frame; nil: the largest event plus 64 KiB for the frame's other fields.
    public var maxFrameBytes: Int?
    /// Listening beyond loopback with authentication off is refused unless this is set (SPEC §8).
    public var allowInsecureRemote = false
    /// Tokens, JWT and ACLs: the `auth:` section; `--auth` / `MESHGATE_AUTH` switch it on or off.
    public var auth = AuthConfiguration()
    /// The meshgate.yaml read, if any: reloads re-read its `auth:` section.
    public var configFile: String?
    public var logLevel = "info"
    /// `text` (one human-readable line per entry) or `json` (one JSON object per line).
    public var logFormat = "text"
    /// Serve `GET /metrics` and record publish and log metrics.
    public var metrics = true
    /// libcurl threads of the webhook connectors (each with its own multi handle and connection
    /// cache; an endpoint's `concurrency` is split among them).
    public var webhookThreads = GatewayConfig.defaultWebhookThreads
    /// The topic events that other sites bridge here are stored under; nil keeps their topic.
    public var bridgeTopic: BridgeTopicTemplate?

    /// Two where there are two cores or more: one thread of libcurl saturates a core at about a
    /// third of what the same receiver answers, and a second one takes the rest of the machine.
    public static var defaultWebhookThreads: Int { min(2, max(1, ProcessInfo.processInfo.activeProcessorCount)) }

    public init() {}

    /// The node name when none is given: the host name, else `meshgate`.
    public static func defaultNodeName() -> String {
        let name = ProcessInfo.processInfo.hostName
        return name.isEmpty || name == "localhost" ? "meshgate" : name
    }

    /// One setting: its key in `meshgate.yaml`, its variable, its flag, and how a value applies.
    public struct Setting: Sendable {
        public let key: String
        public let env: String
        public let flag: String
        public let help: String
        let apply: @Sendable (inout GatewayConfig, String) -> String?
    }

    public static let settings: [Setting] = [
        Setting(key: "node", env: "MESHGATE_NODE", flag: "--node", help: "node (site) name; default the host name") { c, v in
            guard !v.isEmpty, v.utf8.count <= 255, !v.contains("/"), !v.contains(where: \.isWhitespace) else {
                return "\"\(v)\" is not a node name (1-255 bytes, no '/' or whitespace)"
            }
            c.node = v
            return nil
        },
        Setting(key: "http", env: "MESHGATE_HTTP", flag: "--http", help: "HTTP listen address HOST:PORT; default 127.0.0.1:8080") { c, v in
            guard let hp = HostPort(parsing: v) else { return "\"\(v)\" is not HOST:PORT" }
            c.http = hp
            return nil
        },
        Setting(key: "tcp", env: "MESHGATE_TCP", flag: "--tcp", help: "TCP listen address HOST:PORT; default 127.0.0.1:7070") { c, v in
            guard let hp = HostPort(parsing: v) else { return "\"\(v)\" is not HOST:PORT" }
            c.tcp = hp
            return nil
        },
        Setting(key: "max_inflight", env: "MESHGATE_MAX_INFLIGHT", flag: "--max-inflight",
                help: "unanswered publishes per TCP connection; default 1024") { c, v in
            guard let n = Int(v), n >= 1, n <= 1 << 20 else { return "\"\(v)\" is not a count from 1 to 1048576" }
            c.maxInFlight = n
            return nil
        },
        Setting(key: "data", env: "MESHGATE_DATA", flag: "--data", help: "data directory of the built-in log; default ./data") { c, v in
            guard !v.isEmpty else { return "the data directory may not be empty" }
            c.dataDirectory = v
            return nil
        },
        Setting(key: "routes", env: "MESHGATE_ROUTES", flag: "--routes", help: "route files directory; default ./routes") { c, v in
            guard !v.isEmpty else { return "the routes directory may not be empty" }
            c.routesDirectory = v
            return nil
        },
        Setting(key: "fsync", env: "MESHGATE_FSYNC", flag: "--fsync", help: "default durability: always, interval[:MS] or none; default always") { c, v in
            guard let d = Durability(parsing: v) else { return "\"\(v)\" is not always, interval, interval:MS or none" }
            c.fsync = d
            return nil
        },
        Setting(key: "max_event_bytes", env: "MESHGATE_MAX_EVENT_BYTES", flag: "--max-event-bytes", help: "largest event data; default 1048576") { c, v in
            guard let n = Int(v), n >= 1, n <= 64 << 20 else { return "\"\(v)\" is not a size in bytes from 1 to 67108864" }
            c.maxEventBytes = n
            return nil
        },
        Setting(key: "max_body_bytes", env: "MESHGATE_MAX_BODY_BYTES", flag: "--max-body-bytes", help: "largest structured or batch request body; default 8388608") { c, v in
            guard let n = Int(v), n >= 1024, n <= 256 << 20 else { return "\"\(v)\" is not a size in bytes from 1024 to 268435456" }
            c.maxBodyBytes = n
            return nil
        },
        Setting(key: "max_header_bytes", env: "MESHGATE_MAX_HEADER_BYTES", flag: "--max-header-bytes", help: "largest HTTP request head; default 16384") { c, v in
            guard let n = Int(v), n >= 1024, n <= 1 << 20 else { return "\"\(v)\" is not a size in bytes from 1024 to 1048576" }
            c.maxHeaderBytes = n
            return nil
        },
        // TLS and connection limits: one block (docs/operations.md, "TLS" and "Limits").
        Setting(key: "tls_cert", env: "MESHGATE_TLS_CERT", flag: "--tls-cert", help: "PEM certificate chain of the listeners; with tls_key turns TLS on") { c, v in
            guard !v.isEmpty else { return "the certificate file may not be empty" }
            c.tlsCertificate = v
            return nil
        },
        Setting(key: "tls_key", env: "MESHGATE_TLS_KEY", flag: "--tls-key", help: "PEM private key of tls_cert") { c, v in
            guard !v.isEmpty else { return "the key file may not be empty" }
            c.tlsKey = v
            return nil
        },
        Setting(key: "tls_client_ca", env: "MESHGATE_TLS_CLIENT_CA", flag: "--tls-client-ca",
                help: "PEM CA certificates; set: clients must present a certificate they issued (mutual TLS)") { c, v in
            guard !v.isEmpty else { return "the client CA file may not be empty" }
            c.tlsClientCA = v
            return nil
        },
        Setting(key: "tls_min_version", env: "MESHGATE_TLS_MIN_VERSION", flag: "--tls-min-version", help: "1.2 or 1.3; default 1.2") { c, v in
            guard let version = TLSMinimumVersion(rawValue: v) else { return "\"\(v)\" is not 1.2 or 1.3" }
            c.tlsMinimumVersion = version
            return nil
        },
        Setting(key: "tls_listeners", env: "MESHGATE_TLS_LISTENERS", flag: "--tls-listeners", help: "listeners speaking TLS when it is on: http,tcp (default), http or tcp") { c, v in
            let names = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard !names.isEmpty, names.allSatisfy({ ["http", "tcp"].contains($0) }) else { return "\"\(v)\" is not a list of http and tcp" }
            c.tlsListeners = names
            return nil
        },
        Setting(key: "max_connections", env: "MESHGATE_MAX_CONNECTIONS", flag: "--max-connections", help: "open connections per listener; default 10000") { c, v in
            guard let n = Int(v), n >= 1, n <= 1 << 20 else { return "\"\(v)\" is not a count from 1 to 1048576" }
            c.maxConnections = n
            return nil
        },
        Setting(key: "max_connections_per_peer", env: "MESHGATE_MAX_CONNECTIONS_PER_PEER", flag: "--max-connections-per-peer",
                help: "open connections per listener from one IP address; default 1000") { c, v in
            guard let n = Int(v), n >= 1, n <= 1 << 20 else { return "\"\(v)\" is not a count from 1 to 1048576" }
            c.maxConnectionsPerPeer = n
            return nil
        },
        Setting(key: "idle_timeout", env: "MESHGATE_IDLE_TIMEOUT", flag: "--idle-timeout", help: "close HTTP keep-alive connections idle this long (e.g. 60s, 500ms); default 60s") { c, v in
            guard let ms = parseDuration(v), ms >= 10, ms <= 86_400_000 else { return "\"\(v)\" is not a duration from 10ms to 24h (e.g. 60s, 500ms)" }
            c.idleTimeoutMilliseconds = ms
            return nil
        },
        Setting(key: "request_timeout", env: "MESHGATE_REQUEST_TIMEOUT", flag: "--request-timeout",
                help: "an HTTP request must arrive in full this long after its first byte, else 408 (e.g. 30s); default 30s") { c, v in
            guard let ms = parseDuration(v), ms >= 10, ms <= 86_400_000 else { return "\"\(v)\" is not a duration from 10ms to 24h (e.g. 30s, 500ms)" }
            c.requestTimeoutMilliseconds = ms
            return nil
        },
        Setting(key: "max_frame_bytes", env: "MESHGATE_MAX_FRAME_BYTES", flag: "--max-frame-bytes",
                help: "largest TCP frame; default max_event_bytes + 65536") { c, v in
            guard let n = Int(v), n >= 1024, n <= Int(UInt32.max) else { return "\"\(v)\" is not a size in bytes from 1024 to 4294967295" }
            c.maxFrameBytes = n
            return nil
        },
        Setting(key: "allow_insecure_remote", env: "MESHGATE_ALLOW_INSECURE_REMOTE", flag: "--allow-insecure-remote",
                help: "allow listening beyond loopback with authentication off") { c, v in
            guard let b = parseBool(v) else { return "\"\(v)\" is not true or false" }
            c.allowInsecureRemote = b
            return nil
        },
        Setting(key: "auth", env: "MESHGATE_AUTH", flag: "--auth",
                help: "on or off: require a bearer token or JWT, with the auth: section's ACLs; default off") { c, v in
            guard let b = parseBool(v) else { return "\"\(v)\" is not on or off" }
            c.auth.enabled = b
            return nil
        },
        Setting(key: "log_level", env: "MESHGATE_LOG_LEVEL", flag: "--log-level", help: "trace, debug, info, notice, warning, error or critical; default info") { c, v in
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(v) else {
                return "\"\(v)\" is not a log level (trace, debug, info, notice, warning, error, critical)"
            }
            c.logLevel = v
            return nil
        },
        Setting(key: "log_format", env: "MESHGATE_LOG_FORMAT", flag: "--log-format", help: "text or json; default text") { c, v in
            guard ["text", "json"].contains(v) else { return "\"\(v)\" is not a log format (text, json)" }
            c.logFormat = v
            return nil
        },
        Setting(key: "webhook_threads", env: "MESHGATE_WEBHOOK_THREADS", flag: "--webhook-threads",
                help: "libcurl threads of the webhook connectors; default 2 (1 on a single core)") { c, v in
            guard let n = Int(v), n >= 1, n <= 64 else { return "\"\(v)\" is not a count from 1 to 64" }
            c.webhookThreads = n
            return nil
        },
        Setting(key: "bridge_topic", env: "MESHGATE_BRIDGE_TOPIC", flag: "--bridge-topic",
                help: "topic of events other sites bridge here: {topic}, {peer} (the sending site), {origin} (the first hop) and text; default {topic}") { c, v in
            do throws(BridgeTopicTemplateError) {
                let template = try BridgeTopicTemplate(parsing: v)
                c.bridgeTopic = template.isIdentity ? nil : template
                return nil
            } catch {
                return error.reason
            }
        },
        Setting(key: "metrics", env: "MESHGATE_METRICS", flag: "--metrics", help: "on or off: GET /metrics and the metrics it needs; default on") { c, v in
            guard let b = parseBool(v) else { return "\"\(v)\" is not on or off" }
            c.metrics = b
            return nil
        },
    ]

    /// `30s`, `500ms`, `2m` or plain seconds (`30`), in milliseconds.
    static func parseDuration(_ v: String) -> Int? {
        let units: [(String, Int)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, scale) in units where v.hasSuffix(suffix) {
            guard let n = Int(v.dropLast(suffix.count)), n >= 0, n <= Int(Int32.max) else { return nil }
            return n * scale
        }
        guard let n = Int(v), n >= 0, n <= Int(Int32.max) else { return nil }
        return n * 1000
    }

    static func parseBool(_ v: String) -> Bool? {
        switch v.lowercased() {
        case "true", "yes", "on", "1": true
        case "false", "no", "off", "0": false
        default: nil
        }
    }

    /// Builds the configuration from, in rising precedence, the defaults, the file (`configFile`,
    /// else `MESHGATE_CONFIG`; none when neither is set), the environment and the flags. `flags`
    /// maps a setting's flag (`--http`) to its value.
    public static func load(flags: [String: String] = [:], environment: [String: String] = ProcessInfo.processInfo.environment,
                            configFile: String? = nil) throws(ConfigError) -> GatewayConfig {
        var config = GatewayConfig()
        if let path = configFile ?? environment["MESHGATE_CONFIG"] {
            try config.applyFile(path)
            config.configFile = path
        }
        for s in settings {
            if let v = environment[s.env], let problem = s.apply(&config, v) { throw ConfigError("\(s.env): \(problem)") }
        }
        for s in settings {
            if let v = flags[s.flag], let problem = s.apply(&config, v) { throw ConfigError("\(s.flag): \(problem)") }
        }
        try config.validate()
        try config.checkTLSFiles()
        return config
    }

    /// Applies `meshgate.yaml`: a mapping of setting keys to scalars.
    public mutating func applyFile(_ path: String) throws(ConfigError) {
        guard let data = FileManager.default.contents(atPath: path) else { throw ConfigError("\(path): cannot read the file") }
        guard let text = String(data: data, encoding: .utf8) else { throw ConfigError("\(path): not UTF-8") }
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw ConfigError("\(path): not valid YAML: \(error)")
        }
        guard let root else { return }
        guard case .mapping(let mapping) = root else {
            throw ConfigError("\(path):\(Self.position(root.mark)): expected a mapping of settings (key: value)")
        }
        let known = Dictionary(uniqueKeysWithValues: Self.settings.map { ($0.key, $0) })
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.string, let setting = known[key] else {
                throw ConfigError("\(path):\(Self.position(keyNode.mark)): unknown setting \"\(keyNode.string ?? "?")\"; expected one of \(Self.settings.map(\.key).joined(separator: ", "))")
            }
            if key == "auth", case .mapping = valueNode {
                auth = try AuthSection.parse(valueNode, path: path)
                continue
            }
            guard case .scalar(let scalar) = valueNode else {
                throw ConfigError("\(path):\(Self.position(valueNode.mark)): \(key) takes a single value")
            }
            if let problem = setting.apply(&self, scalar.string) {
                throw ConfigError("\(path):\(Self.position(valueNode.mark)): \(key): \(problem)")
            }
        }
    }

    private static func position(_ mark: Mark?) -> String {
        guard let mark else { return "1:1" }
        return "\(mark.line):\(mark.column)"
    }

    /// Checks what single settings cannot: SPEC §8's loopback rule, and that authentication,
    /// when on, has some credential to accept.
    public func validate() throws(ConfigError) {
        switch (tlsCertificate, tlsKey) {
        case (_?, nil): throw ConfigError("--tls-cert needs --tls-key (MESHGATE_TLS_KEY) with the certificate's private key")
        case (nil, _?): throw ConfigError("--tls-key needs --tls-cert (MESHGATE_TLS_CERT) with the certificate chain")
        default: break
        }
        if tlsClientCA != nil && tlsCertificate == nil {
            throw ConfigError("--tls-client-ca (mutual TLS) needs TLS on: set --tls-cert and --tls-key")
        }
        if effectiveMaxFrameBytes < maxEventBytes + 1024 {
            throw ConfigError("--max-frame-bytes \(effectiveMaxFrameBytes) cannot carry an event of --max-event-bytes \(maxEventBytes); give at least \(maxEventBytes + 1024)")
        }
        if auth.enabled, auth.tokens.isEmpty, auth.jwt == nil {
            throw ConfigError("auth is on but the auth: section has neither tokens nor jwt, so nothing could connect; add auth.tokens (meshgate auth hash-token TOKEN) or auth.jwt")
        }
        if !allowInsecureRemote, !auth.enabled {
            for (name, address) in [("http", http), ("tcp", tcp)] where !address.isLoopback {
                throw ConfigError("--\(name) \(address) listens beyond loopback with authentication off; pass --allow-insecure-remote (MESHGATE_ALLOW_INSECURE_REMOTE=true) to accept that")
            }
        }
    }

    /// The listeners' TLS files, nil when TLS is off.
    public var serverTLSFiles: ServerTLSFiles? {
        guard let tlsCertificate, let tlsKey else { return nil }
        return ServerTLSFiles(certificateChain: tlsCertificate, privateKey: tlsKey, clientCA: tlsClientCA, minimumVersion: tlsMinimumVersion)
    }

    /// Loads the TLS files once, so that an unreadable file or a key not matching its certificate
    /// stops start-up with a message naming the file.
    public func checkTLSFiles() throws(ConfigError) {
        guard let files = serverTLSFiles else { return }
        do { _ = try files.makeContext() } catch { throw ConfigError("TLS: \(error.message)") }
    }

    /// The largest TCP frame in force.
    public var effectiveMaxFrameBytes: Int { maxFrameBytes ?? maxEventBytes + (64 << 10) }

    /// Listen addresses beyond loopback served with authentication off (warned about when allowed).
    public var remoteListeners: [String] {
        guard !auth.enabled else { return [] }
        return [("http", http), ("tcp", tcp)].filter { !$0.1.isLoopback }.map { "\($0.0)=\($0.1)" }
    }

    /// The log's options for this configuration.
    public var logOptions: LogOptions {
        var o = LogOptions()
        o.defaultTopic.durability = fsync
        return o
    }
}
