import CMosquitto
import Foundation
import Logging
import MeshBroker
import MeshCore
import MeshRouting
import Synchronization

/// Turns a burst of received MQTT messages into events for one connector's ingress routes and
/// appends them durably through the broker, blocking the connector's loop thread until they are
/// durable — their PUBACKs are written only after `store` returns true.
///
/// Per message and matching route: the CloudEvent is built (EventMapping), missing attributes are
/// filled, the route's `where` filter is applied, and each `to: {topic}` destination renders its
/// topic and transforms. What cannot be stored as such (the MQTT topic is not a valid mesh topic, a
/// template renders an invalid topic, the payload exceeds the broker's limit) goes to the
/// destination's `dead_letter` topic, or `mqtt-rejected/<connector>`, with the reason: acknowledged
/// messages are never dropped silently.
final class MQTTIngress: MQTTMessageSink {
    let connector: String
    private let broker: Broker
    private let logger: Logger
    private let routes: Mutex<[Route]>
    private let stopping = Atomic<Bool>(false)
    let counters = Counters()

    final class Counters: Sendable {
        let filtered = Atomic<Int>(0)
        let unrouted = Atomic<Int>(0)
        let rejected = Atomic<Int>(0)
        let droppedProperties = Atomic<Int>(0)
    }

    /// `routes` from the start: a message stored before them would count as unrouted and be
    /// acknowledged, and so lost.
    init(connector: String, broker: Broker, routes: [Route], logger: Logger) {
        self.connector = connector
        self.broker = broker
        self.routes = Mutex(routes)
        self.logger = logger
    }

    var ingressName: String { "mqtt/\(connector)" }

    func setRoutes(_ new: [Route]) { routes.withLock { $0 = new } }

    func stop() { stopping.store(true, ordering: .releasing) }

    func store(_ messages: [MQTTMessage]) -> Bool {
        let events = self.events(for: messages)
        if events.isEmpty { return true }
        return append(events)
    }

    func events(for messages: [MQTTMessage]) -> [Event] {
        let routes = self.routes.withLock { $0 }
        let node = broker.options.node
        let ingress = ingressName
        var events: [Event] = []
        events.reserveCapacity(messages.count)
        for m in messages {
            let topic = try? Topic(m.topic)
            var routed = false
            for route in routes {
                guard case .connector(_, let filter) = route.source, Self.matches(filter: filter, mqttTopic: m.topic, topic: topic) else { continue }
                routed = true
                guard let topic else {
                    for spec in route.destinations {
                        events.append(rejectedEvent(m, spec: spec, reason: "the MQTT topic '\(m.topic)' is not a valid mesh topic", node: node))
                    }
                    continue
                }
                var (event, dropped) = MQTTEventMapping.event(from: m, topic: topic)
                if !dropped.isEmpty { counters.droppedProperties.add(dropped.count, ordering: .relaxed) }
                event.fill(node: node, ingress: ingress)
                if let f = route.filter, f.matches(CESQLInput(event)) != .matched {
                    counters.filtered.add(1, ordering: .relaxed)
                    continue
                }
                let captures = filter.captures(topic) ?? []
                for spec in route.destinations {
                    guard case .topic = spec.target else { continue }  // refused at apply; see MQTTConnectors
                    do throws(DeliveryError) {
                        let out = try spec.prepare(event, captures: captures)
                        try check(out)
                        events.append(out)
                    } catch {
                        events.append(rejectedEvent(m, spec: spec, reason: error.reason, node: node, event: event))
                    }
                }
            }
            if !routed { counters.unrouted.add(1, ordering: .relaxed) }
        }
        return events
    }

    static func matches(filter: TopicPattern, mqttTopic: String, topic: Topic?) -> Bool {
        if let topic { return filter.matches(topic) }
        var result = false
        return mosquitto_topic_matches_sub(filter.text, mqttTopic, &result) == MOSQ_ERR_SUCCESS.rawValue && result
    }

    private func check(_ event: Event) throws(DeliveryError) {
        if event.data.count > broker.options.maxEventBytes {
            throw DeliveryError("the payload of \(event.data.count) bytes exceeds the limit of \(broker.options.maxEventBytes) bytes", status: 413, retryable: false)
        }
        do { try event.validate() } catch { throw DeliveryError(error.message, retryable: false) }
    }

    /// The message as an event on the dead-letter topic, with why (and without the payload when the
    /// payload is what was wrong).
    private func rejectedEvent(_ m: MQTTMessage, spec: DestinationSpec, reason: String, node: String, event: Event? = nil) -> Event {
        counters.rejected.add(1, ordering: .relaxed)
        let topic = spec.deadLetter ?? (try? Topic("mqtt-rejected/\(connector)")) ?? (try! Topic("mqtt-rejected"))
        var e = event ?? Event(topic: topic, data: m.payload)
        e.topic = topic
        if e.data.count > broker.options.maxEventBytes { e.data = [] }
        // Keep only extensions that validate, so the dead letter itself can always be stored.
        for (name, _) in e.extensions where (try? Event.validateExtensionName(name)) == nil { e.extensions[name] = nil }
        e.extensions["deadletterreason"] = reason
        e.extensions["deadletterdest"] = spec.label
        e.extensions["mqtttopic"] = m.topic
        e.fill(node: node, ingress: ingressName)
        logger.warning("mqtt \(connector): message on '\(m.topic)' rejected to \(topic): \(reason)")
        return e
    }

    /// Appends until durable. Transient failures (overload, storage errors) are retried with backoff
    /// while the loop thread waits — unacknowledged, so the broker keeps the messages. False only when
    /// the log is closed or the connector stops: then nothing is acknowledged and the broker redelivers.
    private func append(_ events: [Event]) -> Bool {
        var delay = 50
        var logged = false
        while true {
            let done = DispatchSemaphore(value: 0)
            let outcome = Mutex<Result<[PublishReceipt], BrokerError>?>(nil)
            broker.publish(events, ingress: ingressName) { result in
                outcome.withLock { $0 = result }
                done.signal()
            }
            done.wait()
            switch outcome.withLock({ $0 })! {
            case .success:
                if logged { logger.info("mqtt \(connector): storing works again") }
                return true
            case .failure(let error):
                if error.kind == .closed { return false }
                if !logged {
                    logger.error("mqtt \(connector): cannot store \(events.count) event(s), retrying (messages stay unacknowledged): \(error.message)")
                    logged = true
                }
                if stopping.load(ordering: .acquiring) { return false }
                let wait = max(delay, error.retryAfterMilliseconds ?? 0)
                usleep(UInt32(wait) * 1000)
                delay = min(delay * 2, 5000)
            }
        }
    }
}
