/// What the admin API shows about parts the HTTP listener does not own — routes and connectors —
/// provided by the gateway. Bodies are JSON; these endpoints are not on a hot path.
public protocol AdminSource: Sendable {
    /// `GET /v1/routes`: generation, files, routes, last reload error.
    func routes() -> [UInt8]
    /// `POST /v1/routes/reload`: validate and swap. On success, the JSON body describing the new
    /// generation; on failure the running table stays and `errors` name every problem
    /// (`file:line:column: …`).
    func reloadRoutes() async -> Result<[UInt8], RoutesRejected>
    /// `GET /v1/connectors`: state, lag and last error per connector and destination.
    func connectors() -> [UInt8]
    /// `GET /metrics`: the Prometheus text exposition; nil when metrics are off (404).
    func metrics() -> [UInt8]?
}

extension AdminSource {
    public func metrics() -> [UInt8]? { nil }
}

/// A route reload that failed validation.
public struct RoutesRejected: Error, Sendable {
    public let errors: [String]
    /// There is no routes directory, so nothing can be reloaded (503 rather than 422).
    public let routingOff: Bool
    public init(errors: [String], routingOff: Bool = false) {
        self.errors = errors
        self.routingOff = routingOff
    }
}
