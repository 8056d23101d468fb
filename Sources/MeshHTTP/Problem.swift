import MeshAuth
import MeshBroker
import MeshCore
import NIOHTTP1

/// An RFC 9457 problem: every error the HTTP API returns. `code` is the stable dotted code the
/// broker and the TCP protocol use too; the problem `type` is `https://meshgate.dev/problems/<code>`.
public struct Problem: Error, Sendable, Equatable {
    public static let typeBase = "https://meshgate.dev/problems/"

    public let code: String
    public let status: HTTPResponseStatus
    public let title: String
    public let detail: String
    /// For 429: seconds the client should wait (sent as `Retry-After`).
    public let retryAfterSeconds: Int?
    /// Sent in `Allow` with a 405.
    public let allow: [HTTPMethod]
    /// Sent in `WWW-Authenticate` with a 401.
    public var challenge: String?

    public init(code: String, status: HTTPResponseStatus, title: String, detail: String,
                retryAfterSeconds: Int? = nil, allow: [HTTPMethod] = []) {
        self.code = code
        self.status = status
        self.title = title
        self.detail = detail
        self.retryAfterSeconds = retryAfterSeconds
        self.allow = allow
    }

    public var type: String { Self.typeBase + code }

    // MARK: The catalogue (docs/http-api.md lists every one)

    static func invalidJSON(_ e: JSONError) -> Problem {
        Problem(code: "json.invalid", status: .badRequest, title: "Malformed JSON", detail: e.message)
    }

    static func invalidEvent(_ detail: String) -> Problem {
        Problem(code: "event.invalid", status: .badRequest, title: "Invalid CloudEvent", detail: detail)
    }

    static func unsupportedSpecversion(_ got: String) -> Problem {
        Problem(code: "specversion.unsupported", status: .badRequest, title: "Unsupported CloudEvents specversion",
                detail: "attribute \"specversion\" must be \"1.0\", got \"\(got)\"")
    }

    static func invalidTopic(_ e: TopicError) -> Problem {
        Problem(code: "topic.invalid", status: .badRequest, title: "Invalid topic", detail: e.message)
    }

    static func invalidPattern(_ e: TopicPatternError) -> Problem {
        Problem(code: "pattern.invalid", status: .badRequest, title: "Invalid topic pattern", detail: e.message)
    }

    static func invalidRequest(_ detail: String) -> Problem {
        Problem(code: "request.invalid", status: .badRequest, title: "Invalid request", detail: detail)
    }

    static func bodyTooLarge(limit: Int) -> Problem {
        Problem(code: "request.too_large", status: .payloadTooLarge, title: "Request body too large",
                detail: "the request body exceeds the limit of \(limit) bytes")
    }

    static func headersTooLarge(limit: Int) -> Problem {
        Problem(code: "headers.too_large", status: .requestHeaderFieldsTooLarge, title: "Request headers too large",
                detail: "the request headers exceed the limit of \(limit) bytes")
    }

    static func notFound(_ path: String) -> Problem {
        Problem(code: "route.not_found", status: .notFound, title: "Not found", detail: "no endpoint at \(path)")
    }

    static func methodNotAllowed(_ method: HTTPMethod, _ path: String, allow: [HTTPMethod]) -> Problem {
        Problem(code: "method.not_allowed", status: .methodNotAllowed, title: "Method not allowed",
                detail: "\(method.rawValue) is not allowed on \(path); allowed: \(allow.map(\.rawValue).joined(separator: ", "))",
                allow: allow)
    }

    static func malformedHTTP(_ detail: String) -> Problem {
        Problem(code: "http.malformed", status: .badRequest, title: "Malformed HTTP request", detail: detail)
    }

    static func notReady(_ detail: String) -> Problem {
        Problem(code: "not_ready", status: .serviceUnavailable, title: "Not ready", detail: detail)
    }

    static func shuttingDown() -> Problem {
        Problem(code: "closed", status: .serviceUnavailable, title: "Shutting down",
                detail: "the gateway is shutting down and accepts no new requests")
    }

    static func routesRejected(_ errors: [String]) -> Problem {
        Problem(code: "routes.invalid", status: .unprocessableEntity, title: "Route files rejected",
                detail: "the running routes are kept; \(errors.count) error(s): " + errors.joined(separator: "; "))
    }

    /// 401: no credential, or one that was refused. RFC 6750's challenge goes with it.
    static func unauthorized(_ f: AuthFailure) -> Problem {
        var p = Problem(code: "auth.unauthorized", status: .unauthorized, title: "Unauthorized", detail: f.message)
        p.challenge = f.reason == .missing ? #"Bearer realm="meshgate""#
            : #"Bearer realm="meshgate", error="invalid_token", error_description=""# + headerSafe(f.message) + "\""
        return p
    }

    /// Text that may carry what a client sent (a token's claims), made fit for a quoted header
    /// value: control characters become spaces and `"` becomes `'`. Response headers are not
    /// validated again on the way out (`configurePipeline`).
    static func headerSafe(_ text: String) -> String {
        String(decoding: text.utf8.map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: " ") : $0 == UInt8(ascii: "\"") ? UInt8(ascii: "'") : $0 },
               as: UTF8.self)
    }

    /// 403: the identity's ACL does not allow this; the detail names the topic or pattern.
    static func forbidden(_ d: AccessDenied) -> Problem {
        Problem(code: "auth.forbidden", status: .forbidden, title: "Forbidden", detail: d.description)
    }

    /// 429: the identity's publish rate is spent.
    static func rateLimited(_ r: RateLimited) -> Problem {
        Problem(code: "rate_limited", status: .tooManyRequests, title: "Rate limited", detail: r.description,
                retryAfterSeconds: max(1, (r.retryAfterMilliseconds + 999) / 1000))
    }

    static func internalError(_ detail: String) -> Problem {
        Problem(code: "internal", status: .internalServerError, title: "Internal error", detail: detail)
    }

    init(_ e: BrokerError) {
        switch e.kind {
        case .invalidTopic: self.init(code: e.code, status: .badRequest, title: "Invalid topic", detail: e.message)
        case .invalidPattern: self.init(code: e.code, status: .badRequest, title: "Invalid topic pattern", detail: e.message)
        case .invalidEvent: self.init(code: e.code, status: .badRequest, title: "Invalid CloudEvent", detail: e.message)
        case .tooLarge: self.init(code: e.code, status: .payloadTooLarge, title: "Event too large", detail: e.message)
        case .unknownTopic: self.init(code: e.code, status: .notFound, title: "Unknown topic", detail: e.message)
        case .unknownPartition: self.init(code: e.code, status: .notFound, title: "Unknown partition", detail: e.message)
        case .offsetOutOfRange: self.init(code: e.code, status: .badRequest, title: "Offset out of range", detail: e.message)
        case .overloaded:
            let ms = e.retryAfterMilliseconds ?? 1000
            self.init(code: e.code, status: .tooManyRequests, title: "Overloaded", detail: e.message,
                      retryAfterSeconds: max(1, (ms + 999) / 1000))
        case .storage: self.init(code: e.code, status: .serviceUnavailable, title: "Storage unavailable", detail: e.message)
        case .closed: self.init(code: e.code, status: .serviceUnavailable, title: "Shutting down", detail: e.message)
        case .invalidRequest: self.init(code: e.code, status: .badRequest, title: "Invalid request", detail: e.message)
        }
    }

    /// The `application/problem+json` body.
    var body: [UInt8] {
        var w = JSONWriter()
        var first = true
        w.raw("{")
        w.key("type", first: &first); w.string(type)
        w.key("title", first: &first); w.string(title)
        w.key("status", first: &first); w.int(status.code)
        w.key("detail", first: &first); w.string(detail)
        w.key("code", first: &first); w.string(code)
        w.raw("}")
        return w.bytes
    }
}
