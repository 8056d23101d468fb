import MeshCore
import MeshRouting

/// A `type: mqtt` connector's options, parsed from its `ConnectorSpec` (after `${ENV}` substitution).
/// Route files are validated by MeshConfig first; this only turns the strings into values and
/// catches what a file cannot (for example a `mqtts://` URL with a missing CA file is found at connect).
public struct MQTTSettings: Hashable, Sendable {
    public enum ProtocolVersion: String, Hashable, Sendable {
        case v311 = "3.1.1"
        case v5 = "5"
    }

    public var host: String
    public var port: Int
    public var tls: Bool
    public var clientID: String
    public var username: String?
    public var password: String?
    public var protocolVersion: ProtocolVersion = .v5
    /// Egress publish QoS. Ingress subscribes at min(qos, 1): see docs/connectors.md (ack timing).
    public var qos: Int32 = 1
    public var retain = false
    public var cleanSession = false
    public var keepAliveSeconds: Int32 = 30
    /// MQTT 5 session expiry interval; nil = never (UInt32.max), as a 3.1.1 persistent session.
    public var sessionExpirySeconds: UInt32? = nil
    /// MQTT 5 receive maximum: QoS 1/2 messages the broker may have unacknowledged towards us (the
    /// largest ingress burst).
    public var maxInflight: Int32 = 1000
    /// Egress window: our QoS 1/2 publishes sent and not yet acknowledged, at most (libmosquitto's
    /// send maximum; the broker's own receive maximum may lower it). The rest of a batch waits in
    /// libmosquitto's queue. See `defaultPublishInflight`.
    public var publishInflight: Int32 = MQTTSettings.defaultPublishInflight
    /// libmosquitto 2.0 walks its whole list of outgoing messages on every publish and every PUBACK
    /// (`message__release_to_inflight`), so each message costs time proportional to the window: at
    /// 1000 that walk was a sixth of the connector's CPU in `meshgate bench mqtt`. The window needs
    /// rate × round trip, and the round trip grows when the host is busy: at 100 the benchmark was
    /// window-bound (0.7 of `mosquitto_pub -l`), at 300 it was not (docs/connectors.md, Egress).
    public static let defaultPublishInflight: Int32 = 300
    public var reconnectBackoff: Duration = .seconds(1)
    public var reconnectMaxBackoff: Duration = .seconds(30)
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
    public var tlsInsecure = false

    public init(host: String, port: Int, tls: Bool = false, clientID: String) {
        self.host = host
        self.port = port
        self.tls = tls
        self.clientID = clientID
    }

    /// The ingress subscription QoS (see the ack-timing section of docs/connectors.md).
    public var subscribeQoS: Int32 { min(qos, 1) }

    public init(_ spec: ConnectorSpec) throws(MQTTError) {
        let url = spec.url
        guard let schemeEnd = url.range(of: "://") else { throw MQTTError(.config, "url \(url) has no scheme; expected mqtt:// or mqtts://") }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "mqtt" || scheme == "mqtts" else { throw MQTTError(.config, "url \(url): expected mqtt:// or mqtts://") }
        var rest = String(url[schemeEnd.upperBound...])
        if let slash = rest.firstIndex(of: "/") { rest = String(rest[..<slash]) }
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = String(rest[rest.index(after: at)...])
            if let colon = userinfo.firstIndex(of: ":") {
                username = String(userinfo[..<colon]).removingPercentEncodingLite
                password = String(userinfo[userinfo.index(after: colon)...]).removingPercentEncodingLite
            } else {
                username = String(userinfo).removingPercentEncodingLite
            }
        }
        let tls = scheme == "mqtts"
        var host = rest
        var port = tls ? 8883 : 1883
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw MQTTError(.config, "url \(url) has an invalid port") }
                port = p
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else { throw MQTTError(.config, "url \(url) has an invalid port") }
            port = p
        }
        guard !host.isEmpty else { throw MQTTError(.config, "url \(url) has no host") }
        let o = spec.options
        self.init(host: host, port: port, tls: tls, clientID: o["client_id"] ?? "meshgate-\(spec.name)")
        self.username = o["username"] ?? username
        self.password = o["password"] ?? password
        if let v = o["protocol"] {
            guard let p = ProtocolVersion(rawValue: v) else { throw MQTTError(.config, "protocol must be 3.1.1 or 5, not \(v)") }
            protocolVersion = p
        }
        if let v = o["qos"] {
            guard let q = Int32(v), (0...2).contains(q) else { throw MQTTError(.config, "qos must be 0, 1 or 2, not \(v)") }
            qos = q
        }
        if let v = o["retain"] { retain = try Self.bool(v, "retain") }
        if let v = o["clean_session"] { cleanSession = try Self.bool(v, "clean_session") }
        if let v = o["tls_insecure"] { tlsInsecure = try Self.bool(v, "tls_insecure") }
        if let v = o["keepalive"] {
            let d = try Self.duration(v, "keepalive")
            keepAliveSeconds = Int32(clamping: max(5, d.components.seconds))
        }
        if let v = o["session_expiry"], v != "never" {
            sessionExpirySeconds = UInt32(clamping: try Self.duration(v, "session_expiry").components.seconds)
        }
        if let v = o["max_inflight"] {
            guard let n = Int32(v), (1...65535).contains(n) else { throw MQTTError(.config, "max_inflight must be 1 to 65535, not \(v)") }
            maxInflight = n
        }
        if let v = o["publish_inflight"] {
            guard let n = Int32(v), (1...65535).contains(n) else { throw MQTTError(.config, "publish_inflight must be 1 to 65535, not \(v)") }
            publishInflight = n
        }
        if let v = o["reconnect_backoff"] { reconnectBackoff = max(.milliseconds(10), try Self.duration(v, "reconnect_backoff")) }
        if let v = o["reconnect_max_backoff"] { reconnectMaxBackoff = max(reconnectBackoff, try Self.duration(v, "reconnect_max_backoff")) }
        caFile = o["ca_file"]
        certFile = o["cert_file"]
        keyFile = o["key_file"]
        if (certFile == nil) != (keyFile == nil) { throw MQTTError(.config, "cert_file and key_file go together (a client certificate needs its key)") }
        if (caFile != nil || certFile != nil) && !tls { throw MQTTError(.config, "ca_file/cert_file need an mqtts:// url") }
    }

    static func bool(_ s: String, _ key: String) throws(MQTTError) -> Bool {
        switch s.lowercased() {
        case "true": return true
        case "false": return false
        default: throw MQTTError(.config, "\(key) must be true or false, not \(s)")
        }
    }

    /// Same grammar as route files (`200ms`, `5s`, `2m`, `1h`); kept here so this module needs no YAML.
    static func duration(_ text: String, _ key: String) throws(MQTTError) -> Duration {
        let units: [(String, Double)] = [("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            if suffix == "s", number.hasSuffix("m") { continue }
            if let v = Double(number), v >= 0, v.isFinite, let ns = Int64(exactly: (v * scale * 1e9).rounded(.towardZero)) {
                return .nanoseconds(ns)
            }
        }
        throw MQTTError(.config, "\(key) must be a duration like 10s, not \(text)")
    }
}

extension String {
    /// `%XX` decoding for URL user info, without Foundation.
    var removingPercentEncodingLite: String {
        guard contains("%") else { return self }
        var out: [UInt8] = []
        var bytes = Array(utf8)[...]
        while let b = bytes.popFirst() {
            if b == UInt8(ascii: "%"), bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) {
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A connector failure with a stable code, for status and logs.
public struct MQTTError: MeshError, Equatable {
    public enum Kind: String, Sendable {
        case config = "mqtt.config"
        case connect = "mqtt.connect"
        case refused = "mqtt.refused"
        case tls = "mqtt.tls"
        case disconnected = "mqtt.disconnected"
        case publish = "mqtt.publish"
        case stopped = "mqtt.stopped"
    }
    public let kind: Kind
    public let message: String
    public var code: String { kind.rawValue }
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}
