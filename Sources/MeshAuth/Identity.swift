import MeshCore

/// Who a credential belongs to and what it may do: the same value on HTTP, TCP and bridge
/// ingress. An identity is resolved from its credential on every HTTP request and on every TCP
/// HELLO, and again for live connections when the configuration is reloaded.
public struct Identity: Sendable, Hashable, CustomStringConvertible {
    /// The token's `name`, or the JWT's subject claim.
    public let name: String
    public let publish: TopicACL
    public let subscribe: TopicACL
    /// May use the admin endpoints (status, topics, routes, connectors, metrics).
    public let admin: Bool
    /// Events per second this identity may publish; nil for no limit.
    public let rate: PublishRate?

    public init(name: String, publish: TopicACL, subscribe: TopicACL, admin: Bool = false, rate: PublishRate? = nil) {
        self.name = name
        self.publish = publish
        self.subscribe = subscribe
        self.admin = admin
        self.rate = rate
    }

    /// The identity of every request while authentication is off: everything is allowed.
    public static let anonymous = Identity(name: "anonymous", publish: .everything, subscribe: .everything, admin: true)

    public var description: String { name }

    public func mayPublish(_ topic: Topic) -> Bool { publish.permits(topic) }
    public func maySubscribe(_ pattern: TopicPattern) -> Bool { subscribe.permits(pattern) }
}

/// Allow and deny topic patterns (MQTT `+`/`#`). Deny wins; what no allow pattern covers is
/// refused (default deny).
public struct TopicACL: Sendable, Hashable {
    public let allow: [TopicPattern]
    public let deny: [TopicPattern]

    public init(allow: [TopicPattern], deny: [TopicPattern] = []) {
        self.allow = allow
        self.deny = deny
    }

    public static let everything = TopicACL(allow: [try! TopicPattern("#")])
    public static let nothing = TopicACL(allow: [])

    /// A topic is permitted when an allow pattern matches it and no deny pattern does.
    public func permits(_ topic: Topic) -> Bool {
        allow.contains { $0.matches(topic) } && !deny.contains { $0.matches(topic) }
    }

    /// A pattern is permitted when every topic it can match is covered by one allow pattern and
    /// none of them can match a deny pattern: `sensors/+/temp` is within `sensors/#`, and
    /// `sensors/#` is refused when `sensors/secret` is denied.
    public func permits(_ pattern: TopicPattern) -> Bool {
        allow.contains { pattern.isCovered(by: $0) } && !deny.contains { pattern.overlaps($0) }
    }
}

/// A token bucket's settings: `eventsPerSecond` sustained, up to `burst` at once.
public struct PublishRate: Sendable, Hashable {
    public let eventsPerSecond: Double
    public let burst: Int

    public init(eventsPerSecond: Double, burst: Int) {
        self.eventsPerSecond = eventsPerSecond
        self.burst = burst
    }
}
