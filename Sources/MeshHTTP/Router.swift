import NIOHTTP1

/// The API's endpoints. A hand-written table rather than a framework router: a dozen routes, two
/// of which take the rest of the path (a topic or pattern may contain `/`), matched with a few
/// prefix comparisons and no allocation on the publish path.
enum Route: Equatable, Sendable {
    case publish(topic: String)
    case stream(pattern: String)
    case fetch(topic: String)
    case group(String)
    case groupOffsets(String)
    case status
    case topics
    case healthz
    case readyz
    case openapi
    case routes
    case reloadRoutes
    case connectors
    case metrics
    case statusPage
}

enum RouteMatch: Equatable {
    case route(Route)
    case notFound
    case methodNotAllowed([HTTPMethod])
    case badPath(String)
}

enum Router {
    /// Matches a request target (path and query) against the table.
    static func match(_ method: HTTPMethod, _ path: Substring) -> RouteMatch {
        func only(_ allowed: HTTPMethod, _ route: @autoclosure () -> Route) -> RouteMatch {
            method == allowed ? .route(route()) : .methodNotAllowed([allowed])
        }
        func rest(after prefix: StaticString) -> Result<String, Problem>? {
            // Bytes, not characters: the prefixes are ASCII, and comparing characters costs a
            // Unicode-aware walk on every request.
            let p = UnsafeBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount)
            guard path.utf8.count > p.count, path.utf8.starts(with: p) else { return nil }
            let tail = Substring(path.utf8.dropFirst(p.count))
            guard let decoded = percentDecode(tail) else { return .failure(.invalidRequest("the path \(path) has an invalid percent-escape")) }
            return .success(decoded)
        }
        if let r = rest(after: "/v1/publish/") {
            guard case .success(let topic) = r else { return .badPath("the path has an invalid percent-escape") }
            return only(.POST, .publish(topic: topic))
        }
        if let r = rest(after: "/v1/stream/") {
            guard case .success(let pattern) = r else { return .badPath("the path has an invalid percent-escape") }
            return only(.GET, .stream(pattern: pattern))
        }
        if let r = rest(after: "/v1/fetch/") {
            guard case .success(let topic) = r else { return .badPath("the path has an invalid percent-escape") }
            return only(.GET, .fetch(topic: topic))
        }
        if let r = rest(after: "/v1/groups/") {
            guard case .success(let tail) = r else { return .badPath("the path has an invalid percent-escape") }
            if tail.hasSuffix("/offsets") {
                let name = String(tail.dropLast("/offsets".count))
                return name.isEmpty || name.contains("/") ? .notFound : only(.POST, .groupOffsets(name))
            }
            return tail.contains("/") ? .notFound : only(.GET, .group(tail))
        }
        switch path {
        case "/v1/status": return only(.GET, .status)
        case "/v1/topics": return only(.GET, .topics)
        case "/healthz": return only(.GET, .healthz)
        case "/readyz": return only(.GET, .readyz)
        case "/v1/openapi.yaml": return only(.GET, .openapi)
        case "/v1/routes": return only(.GET, .routes)
        case "/v1/routes/reload": return only(.POST, .reloadRoutes)
        case "/v1/connectors": return only(.GET, .connectors)
        case "/metrics": return only(.GET, .metrics)
        case "/", "/index.html": return only(.GET, .statusPage)
        default: return .notFound
        }
    }

    /// `%XX` escapes decoded; nil when one is malformed or the result is not UTF-8. `+` stays `+`
    /// (RFC 3986), so topic patterns and RFC 3339 offsets need no escaping of it.
    static func percentDecode<S: StringProtocol>(_ s: S) -> String? {
        guard s.utf8.contains(UInt8(ascii: "%")) else { return String(s) }
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        var it = s.utf8.makeIterator()
        func hex(_ b: UInt8?) -> UInt8? {
            guard let b else { return nil }
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        while let b = it.next() {
            if b == UInt8(ascii: "%") {
                guard let hi = hex(it.next()), let lo = hex(it.next()) else { return nil }
                out.append(hi << 4 | lo)
            } else {
                out.append(b)
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    /// Splits a request target into its path and its decoded query parameters.
    static func split(_ uri: String) -> (path: Substring, query: Substring) {
        if let q = uri.utf8.firstIndex(of: UInt8(ascii: "?")) {
            return (uri[..<q], uri[uri.index(after: q)...])
        }
        return (uri[...], "")
    }
}

/// Decoded query parameters (`+` is not a space: see `Router.percentDecode`).
struct QueryParameters {
    private var items: [(String, String)] = []

    init(_ query: Substring) throws(Problem) {
        for part in query.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let k = Router.percentDecode(kv[0]), let v = Router.percentDecode(kv.count > 1 ? kv[1] : "") else {
                throw .invalidRequest("query parameter \"\(part)\" has an invalid percent-escape")
            }
            items.append((k, v))
        }
    }

    subscript(name: String) -> String? { items.first { $0.0 == name }?.1 }

    func int(_ name: String, default value: Int, range: ClosedRange<Int>) throws(Problem) -> Int {
        guard let text = self[name] else { return value }
        guard let v = Int(text), range.contains(v) else {
            throw .invalidRequest("query parameter \"\(name)\" must be an integer in \(range.lowerBound)...\(range.upperBound), got \"\(text)\"")
        }
        return v
    }
}
