import MeshCore

/// Where a definition came from, for errors and the admin API.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let column: Int
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }
    public var description: String { "\(file):\(line):\(column)" }
}

/// A named endpoint declared under `connectors:`. Its runtime is built by the connector modules;
/// routing only needs the name, type and (redacted) options.
public struct ConnectorSpec: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable, CaseIterable { case mqtt, webhook, meshgate }
    public let name: String
    public let kind: Kind
    public let url: String
    /// Every option after `${ENV}` substitution. Holds secrets: never log or show it.
    public let options: [String: String]
    /// The same options as written, with secret values replaced by `***` (for logs and the API).
    public let redactedOptions: [String: String]
    public let location: SourceLocation

    public init(name: String, kind: Kind, url: String, options: [String: String], redactedOptions: [String: String], location: SourceLocation) {
        self.name = name
        self.kind = kind
        self.url = url
        self.options = options
        self.redactedOptions = redactedOptions
        self.location = location
    }

    /// Whether a runtime built from `other` behaves as one built from this spec (where it was
    /// written does not matter).
    public func sameRuntime(as other: ConnectorSpec) -> Bool {
        kind == other.kind && url == other.url && options == other.options
    }
}

/// What a route reads: mesh topics matching a pattern, or a connector's ingress.
public enum RouteSource: Hashable, Sendable, CustomStringConvertible {
    case topics(TopicPattern)
    /// Ingress from a connector (an MQTT filter on a broker, a remote site); run by the connector.
    case connector(name: String, filter: TopicPattern)

    public var pattern: TopicPattern {
        switch self {
        case .topics(let p): p
        case .connector(_, let p): p
        }
    }

    public var description: String {
        switch self {
        case .topics(let p): p.text
        case .connector(let name, let p): "\(name):\(p.text)"
        }
    }
}

/// How one destination is delivered to. Defaults retry forever, so nothing is dropped unless a
/// dead-letter topic is given to catch what the policy gives up on.
public struct DeliveryPolicy: Hashable, Sendable {
    public enum Ordering: String, Hashable, Sendable {
        /// Events with the same partition key are delivered in log order; different keys in parallel.
        case key
        /// No order: up to `inFlight` events at once.
        case none
    }

    /// Total attempts including the first; nil = unlimited.
    public var attempts: Int?
    public var backoff: Duration
    public var maxBackoff: Duration
    /// Give up once this much time has passed since the first attempt; nil = no limit.
    public var maxElapsed: Duration?
    /// Full jitter: each wait is uniform in [0, backoff·2ⁿ]; off: exactly backoff·2ⁿ.
    public var jitter: Bool
    /// HTTP-like status classes that are retried: "5xx", "429", "408", "4xx"… Failures without a
    /// status (connection errors, timeouts) are always retryable.
    public var retryOn: Set<String>
    public var respectRetryAfter: Bool
    public var ordering: Ordering
    public var inFlight: Int
    /// Events read ahead of delivery per partition; the log holds the rest (backpressure).
    public var buffer: Int
    /// Where a new cursor starts on topics that already exist: the end (default) or the start.
    public var startAtEarliest: Bool

    public init(attempts: Int? = nil, backoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(30),
                maxElapsed: Duration? = nil, jitter: Bool = true, retryOn: Set<String> = ["5xx", "429", "425", "408"],
                respectRetryAfter: Bool = true, ordering: Ordering = .key, inFlight: Int = 16, buffer: Int = 1024,
                startAtEarliest: Bool = false) {
        self.attempts = attempts
        self.backoff = backoff
        self.maxBackoff = maxBackoff
        self.maxElapsed = maxElapsed
        self.jitter = jitter
        self.retryOn = retryOn
        self.respectRetryAfter = respectRetryAfter
        self.ordering = ordering
        self.inFlight = inFlight
        self.buffer = buffer
        self.startAtEarliest = startAtEarliest
    }

    /// Whether a failure with this status may be retried.
    public func isRetryable(status: Int?) -> Bool {
        guard let status else { return true }
        if retryOn.contains(String(status)) { return true }
        return retryOn.contains("\(status / 100)xx")
    }

    /// The wait before attempt `n + 1` (n ≥ 1 failed attempts so far), before jitter.
    public func ceiling(afterAttempt n: Int) -> Duration {
        let shift = min(max(n - 1, 0), 30)
        let scaled = backoff * (1 << shift)
        return scaled > maxBackoff ? maxBackoff : scaled
    }

    /// The wait before attempt `n + 1`: the ceiling, or with jitter a uniform draw from zero to
    /// it; a longer `Retry-After` from the destination wins when the policy respects it.
    public func wait(afterAttempt n: Int, retryAfter: Duration? = nil, using random: inout some RandomNumberGenerator) -> Duration {
        var wait = ceiling(afterAttempt: n)
        if jitter { wait = .nanoseconds(Int64.random(in: 0...max(0, wait.nanoseconds), using: &random)) }
        if respectRetryAfter, let retryAfter, retryAfter > wait { wait = retryAfter }
        return wait
    }

    public func wait(afterAttempt n: Int, retryAfter: Duration? = nil) -> Duration {
        var random = SystemRandomNumberGenerator()
        return wait(afterAttempt: n, retryAfter: retryAfter, using: &random)
    }
}

/// Attribute changes applied to each event before it reaches a destination.
public struct Transform: Hashable, Sendable {
    public struct Assignment: Hashable, Sendable {
        public let attribute: String
        public let value: Template
        public init(attribute: String, value: Template) {
            self.attribute = attribute
            self.value = value
        }
    }
    /// The `set:` entries, applied in order after `remove:`.
    public var assignments: [Assignment]
    public var remove: [String]
    public init(assignments: [Assignment] = [], remove: [String] = []) {
        self.assignments = assignments
        self.remove = remove
    }
    public var isEmpty: Bool { assignments.isEmpty && remove.isEmpty }
}

/// One `to:` entry.
public struct DestinationSpec: Hashable, Sendable {
    public enum Target: Hashable, Sendable {
        /// Append to a log topic of this mesh.
        case topic(Template)
        /// Deliver through a named connector; `topic` is the remote topic (default `{topic}`).
        case connector(name: String, topic: Template)
    }
    public let target: Target
    public let transform: Transform
    public let policy: DeliveryPolicy
    public let deadLetter: Topic?
    public let location: SourceLocation

    public init(target: Target, transform: Transform = Transform(), policy: DeliveryPolicy = DeliveryPolicy(),
                deadLetter: Topic? = nil, location: SourceLocation) {
        self.target = target
        self.transform = transform
        self.policy = policy
        self.deadLetter = deadLetter
        self.location = location
    }

    public var topicTemplate: Template {
        switch target {
        case .topic(let t): t
        case .connector(_, let t): t
        }
    }

    public var label: String {
        switch target {
        case .topic(let t): "topic \(t.text)"
        case .connector(let name, let t): "connector \(name) (\(t.text))"
        }
    }

    /// Equal for destinations whose behaviour is the same, ignoring where they were written.
    public static func == (a: DestinationSpec, b: DestinationSpec) -> Bool {
        a.target == b.target && a.transform == b.transform && a.policy == b.policy && a.deadLetter == b.deadLetter
    }
    public func hash(into h: inout Hasher) {
        h.combine(target); h.combine(transform); h.combine(policy); h.combine(deadLetter)
    }
}

public struct Route: Sendable {
    public let name: String
    public let source: RouteSource
    public let filter: CESQLExpression?
    public let destinations: [DestinationSpec]
    public let allowLoop: Bool
    public let location: SourceLocation

    public init(name: String, source: RouteSource, filter: CESQLExpression?, destinations: [DestinationSpec],
                allowLoop: Bool = false, location: SourceLocation) {
        self.name = name
        self.source = source
        self.filter = filter
        self.destinations = destinations
        self.allowLoop = allowLoop
        self.location = location
    }

    /// The durable cursor (consumer group) of destination `index`.
    public func group(destination index: Int) -> String { "route:\(name):\(index)" }

    /// What decides the events a destination sees: running pairs are kept across a reload only
    /// when this and the destination itself are unchanged.
    public var selectionKey: String { "\(source)|\(filter?.text ?? "")" }
}

/// An immutable, validated set of routes and connectors: what a reload swaps in atomically.
public struct RouteTable: Sendable {
    public let routes: [Route]
    public let connectors: [String: ConnectorSpec]
    public let files: [String]
    /// Mesh-topic routes indexed by their `from` pattern (values index `routes`).
    public let trie: TopicTrie<Int>

    public init(routes: [Route], connectors: [String: ConnectorSpec], files: [String]) {
        self.routes = routes
        self.connectors = connectors
        self.files = files
        var trie = TopicTrie<Int>()
        for (i, r) in routes.enumerated() {
            if case .topics(let p) = r.source { trie.insert(p, i) }
        }
        self.trie = trie
    }

    public static let empty = RouteTable(routes: [], connectors: [:], files: [])

    /// Mesh routes whose `from` matches the topic, in file order.
    public func routes(matching topic: Topic) -> [Route] {
        trie.matchIndexes(topic).map { routes[trie.entries[$0].value] }
    }
}
