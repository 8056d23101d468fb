import MeshCore

/// What the table would do with one event: used by `routes test`, `--explain` and the engine.
public struct RouteDecision: Sendable {
    public let route: String
    public let pattern: String
    public let patternMatched: Bool
    public let captures: [String]
    /// Nil when the route has no `where`, or its pattern did not match.
    public let filter: FilterResult?
    public let deliveries: [PlannedDelivery]

    public var selected: Bool { patternMatched && (filter == nil || filter == .matched) }
}

public struct PlannedDelivery: Sendable {
    public let index: Int
    public let label: String
    /// Nil for a log topic destination.
    public let connector: String?
    /// The event as the destination would receive it (topic rendered, transforms applied).
    public let event: Event?
    public let error: String?
}

extension RouteTable {
    /// Every mesh route, matched or not, with the reason (for explanations).
    public func explain(_ event: Event) -> [RouteDecision] {
        routes.compactMap { route in
            guard case .topics = route.source else { return nil }
            return route.decide(event)
        }
    }

    /// Only the routes that select the event.
    public func evaluate(_ event: Event) -> [RouteDecision] {
        trie.matchIndexes(event.topic).map { routes[trie.entries[$0].value].decide(event) }.filter(\.selected)
    }
}

extension Route {
    public func decide(_ event: Event) -> RouteDecision {
        let pattern = source.pattern
        guard let captures = pattern.captures(event.topic) else {
            return RouteDecision(route: name, pattern: pattern.text, patternMatched: false, captures: [], filter: nil, deliveries: [])
        }
        let result = filter?.matches(CESQLInput(event))
        guard result == nil || result == .matched else {
            return RouteDecision(route: name, pattern: pattern.text, patternMatched: true, captures: captures, filter: result, deliveries: [])
        }
        let deliveries = destinations.enumerated().map { i, spec in
            do throws(DeliveryError) {
                let out = try spec.prepare(event, captures: captures)
                if case .connector(let c, _) = spec.target {
                    return PlannedDelivery(index: i, label: spec.label, connector: c, event: out, error: nil)
                }
                return PlannedDelivery(index: i, label: spec.label, connector: nil, event: out, error: nil)
            } catch {
                return PlannedDelivery(index: i, label: spec.label, connector: nil, event: nil, error: error.message)
            }
        }
        return RouteDecision(route: name, pattern: pattern.text, patternMatched: true, captures: captures, filter: result, deliveries: deliveries)
    }
}

extension DestinationSpec {
    /// The event this destination receives: transforms applied, topic rendered from the template.
    /// An invalid rendered topic (e.g. an empty `#` capture) is a permanent failure.
    public func prepare(_ event: Event, captures: [String]) throws(DeliveryError) -> Event {
        var out = try transform.apply(to: event, source: event.topic, captures: captures)
        let rendered = topicTemplate.render(topic: event.topic, captures: captures, event: event)
        do { out.topic = try Topic(rendered) } catch {
            throw DeliveryError("the topic template \(topicTemplate.text) rendered an invalid topic: \(error.reason)", retryable: false)
        }
        return out
    }
}
