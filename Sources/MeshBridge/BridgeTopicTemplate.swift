import MeshCore

/// The topic a receiving site stores a bridged event under: a template of literal text and the
/// placeholders `{topic}` (the topic it arrived with), `{peer}` (the site that sent it over this
/// link) and `{origin}` (its first hop, the site it was published at). `from/{peer}/{topic}` keeps
/// each neighbour's events apart; the default, `{topic}`, keeps the topic.
public struct BridgeTopicTemplate: Sendable, Equatable, CustomStringConvertible {
    enum Part: Sendable, Equatable {
        case text(String)
        case topic, peer, origin
    }

    let parts: [Part]
    public let description: String

    /// Parses and checks a template: only the three placeholders, braces balanced, and what it
    /// renders for a sample event is a valid topic. The error names what is wrong.
    public init(parsing text: String) throws(BridgeTopicTemplateError) {
        var parts: [Part] = []
        var literal = ""
        var rest = Substring(text)
        while let open = rest.firstIndex(where: { $0 == "{" || $0 == "}" }) {
            guard rest[open] == "{", let close = rest[open...].firstIndex(of: "}") else {
                throw BridgeTopicTemplateError(text, "a brace at byte \(text.utf8.distance(from: text.startIndex, to: open)) is not closed or not opened")
            }
            literal += rest[..<open]
            let name = rest[rest.index(after: open)..<close]
            let part: Part
            switch name {
            case "topic": part = .topic
            case "peer": part = .peer
            case "origin": part = .origin
            default: throw BridgeTopicTemplateError(text, "unknown placeholder {\(name)}; use {topic}, {peer} or {origin}")
            }
            if !literal.isEmpty { parts.append(.text(literal)) }
            literal = ""
            parts.append(part)
            rest = rest[rest.index(after: close)...]
        }
        literal += rest
        if !literal.isEmpty { parts.append(.text(literal)) }
        self.parts = parts
        description = text
        do { _ = try render(topic: Topic("orders/new"), peer: "site-a", origin: "site-a") } catch {
            throw BridgeTopicTemplateError(text, "it renders an invalid topic (\(error.reason))")
        }
    }

    /// Keeps the topic as it arrived.
    public var isIdentity: Bool { parts == [.topic] }

    /// The topic for an event of `topic` sent by `peer`, published at `origin`. Throws when the
    /// result is not a valid topic (a site name with `+` or `#`, a topic grown past the limit).
    /// Callers skip an identity template (`isIdentity`) rather than render it per event.
    public func render(topic: Topic, peer: String, origin: String) throws(TopicError) -> Topic {
        var name = ""
        for part in parts {
            switch part {
            case .text(let t): name += t
            case .topic: name += topic.name
            case .peer: name += peer
            case .origin: name += origin
            }
        }
        return try Topic(name)
    }
}

public struct BridgeTopicTemplateError: MeshError, Equatable {
    public let template: String
    public let reason: String
    init(_ template: String, _ reason: String) {
        self.template = template
        self.reason = reason
    }
    public var code: String { "config.invalid" }
    public var message: String { "bridge topic template \"\(template)\": \(reason)" }
    public var description: String { message }
}
