import MeshCore
import MeshRouting

/// A webhook connector's settings, read from its `ConnectorSpec` options (the route loader has
/// already checked them; see docs/connectors.md for the table).
public struct WebhookConfig: Sendable, Hashable {
    public enum Mode: String, Sendable, Hashable {
        /// Attributes in `ce-*` headers, the data as the body.
        case binary
        /// One `application/cloudevents+json` document per request.
        case structured
        /// Events delivered together are posted as one `application/cloudevents-batch+json` array.
        case batch
    }

    public var url: String
    public var mode: Mode = .binary
    /// Most requests in flight to this endpoint at once; further deliveries wait their turn.
    public var concurrency = 32
    /// Extra request headers (e.g. Authorization).
    public var headers: [(name: String, value: String)] = []
    public var signer: WebhookSigner?
    /// Batch mode: most events in one request, and how long the first event waits for others.
    public var batchSize = 100
    public var batchLinger: Duration = .milliseconds(5)
    var transfer = TransferOptions()

    public var connectTimeout: Duration { transfer.connectTimeout }
    public var timeout: Duration { transfer.timeout }
    public var denyPrivate: Bool { transfer.denyPrivate }

    public static func == (a: WebhookConfig, b: WebhookConfig) -> Bool {
        a.url == b.url && a.mode == b.mode && a.concurrency == b.concurrency && a.signer == b.signer
            && a.headers.map { "\($0.name):\($0.value)" } == b.headers.map { "\($0.name):\($0.value)" }
            && a.batchSize == b.batchSize && a.batchLinger == b.batchLinger && a.transfer == b.transfer
    }
    public func hash(into h: inout Hasher) { h.combine(url); h.combine(mode) }

    /// Options every webhook connector accepts, beside `type` and `url` (`headers.<Name>` too).
    public static let optionKeys = [
        "secret", "mode", "timeout", "connect_timeout", "concurrency", "headers", "http_version",
        "deny_private", "batch_size", "batch_linger", "ca_file", "cert_file", "key_file",
    ]

    /// Headers the connector sets itself, which `headers:` may not override.
    public static func isReservedHeader(_ name: String) -> Bool {
        let n = name.lowercased()
        return n.hasPrefix("ce-") || n.hasPrefix("webhook-") || ["content-type", "content-length", "host", "expect",
                                                                 "transfer-encoding", "connection", "meshgate-topic"].contains(n)
    }

    /// Reads the connector's options. `denyPrivate` is the gateway-wide default for `deny_private`.
    public init(_ spec: ConnectorSpec, denyPrivate: Bool = false) throws(WebhookConfigError) {
        url = spec.url
        transfer.denyPrivate = denyPrivate
        let o = spec.options
        if let m = o["mode"] {
            guard let mode = Mode(rawValue: m) else { throw WebhookConfigError(option: "mode", "expected binary, structured or batch, not '\(m)'") }
            self.mode = mode
        }
        if let s = o["timeout"] { transfer.timeout = try Self.duration(s, "timeout") }
        if let s = o["connect_timeout"] { transfer.connectTimeout = try Self.duration(s, "connect_timeout") }
        if let s = o["concurrency"] {
            guard let n = Int(s), (1...10_000).contains(n) else { throw WebhookConfigError(option: "concurrency", "expected a whole number from 1 to 10000, not '\(s)'") }
            concurrency = n
        }
        if let s = o["batch_size"] {
            guard let n = Int(s), (1...10_000).contains(n) else { throw WebhookConfigError(option: "batch_size", "expected a whole number from 1 to 10000, not '\(s)'") }
            batchSize = n
        }
        if let s = o["batch_linger"] { batchLinger = try Self.duration(s, "batch_linger", allowZero: true) }
        if let s = o["http_version"] {
            guard let v = TransferOptions.HTTPVersion(rawValue: s) else { throw WebhookConfigError(option: "http_version", "expected auto, 1.1 or 2, not '\(s)'") }
            transfer.httpVersion = v
        }
        if let s = o["deny_private"] {
            switch s.lowercased() {
            case "true": transfer.denyPrivate = true
            case "false": transfer.denyPrivate = false
            default: throw WebhookConfigError(option: "deny_private", "expected true or false, not '\(s)'")
            }
        }
        transfer.caFile = o["ca_file"]
        transfer.certFile = o["cert_file"]
        transfer.keyFile = o["key_file"]
        if let s = o["secret"] { signer = try WebhookSigner(secrets: s) }
        for (key, value) in o.sorted(by: { $0.key < $1.key }) where key.hasPrefix("headers.") {
            let name = String(key.dropFirst("headers.".count))
            if let problem = Self.headerProblem(name: name, value: value) { throw WebhookConfigError(option: "headers", problem) }
            headers.append((name, value))
        }
    }

    /// Why a `headers:` entry cannot be sent, or nil when it can.
    public static func headerProblem(name: String, value: String) -> String? {
        let token = name.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
        if name.isEmpty || !token { return "header name '\(name)' is not a valid HTTP header name" }
        if isReservedHeader(name) { return "header '\(name)' is set by the connector and cannot be overridden" }
        if value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) { return "header '\(name)' has a line break in its value" }
        return nil
    }

    /// Durations as route files write them: 200ms, 5s, 2m, 1h.
    public static func parseDuration(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            if suffix == "s", number.hasSuffix("m") { continue }
            guard let v = Double(number), v >= 0, v.isFinite,
                  let ns = Int64(exactly: (v * scale * 1e9).rounded(.towardZero)) else { return nil }
            return .nanoseconds(ns)
        }
        return nil
    }

    static func duration(_ s: String, _ option: String, allowZero: Bool = false) throws(WebhookConfigError) -> Duration {
        guard let d = parseDuration(s), allowZero || d > .zero else {
            throw WebhookConfigError(option: option, "expected a duration like 500ms or 10s, not '\(s)'")
        }
        return d
    }

    /// The url without user information, for logs and the status page.
    public var redactedURL: String { Self.redact(url) }

    static func redact(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { return url }
        return String(url[..<scheme.upperBound]) + "***@" + String(rest[rest.index(after: at)...])
    }
}

public struct WebhookConfigError: MeshError, Equatable {
    public let option: String
    public let reason: String
    public init(option: String, _ reason: String) {
        self.option = option
        self.reason = reason
    }
    public var code: String { "webhook.config" }
    public var message: String { "\(option): \(reason)" }
}
