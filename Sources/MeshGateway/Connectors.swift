import Logging
import MeshBridge
import MeshBroker
import MeshConfig
import MeshLog
import MeshMQTT
import MeshWebhook

/// The connector runtimes the gateway runs: each registers its destinations and status with the
/// registry, follows route-table changes, and stops before the log closes.
struct ConnectorRuntimes: Sendable {
    let mqtt: MQTTConnectors
    let webhooks: WebhookConnectors
    let bridges: BridgeConnector
    /// The receiving side of site bridges (loop check, durable dedupe window); the TCP listener
    /// hands bridge connections to it.
    let bridgeIngress: BridgeIngressService

    init(site: String, dataDirectory: String, webhookThreads: Int, bridgeTopic: BridgeTopicTemplate?, log: DurableLog, broker: Broker,
         registry: ConnectorRegistry) {
        mqtt = MQTTConnectors(broker: broker, logger: Logger(label: "meshgate.mqtt"))
        registry.register(.mqtt, mqtt) { [mqtt] in mqtt.status.map(Self.describe) }
        webhooks = WebhookConnectors(logger: Logger(label: "meshgate.webhook"), threads: webhookThreads)
        registry.register(.webhook, webhooks) { [webhooks] in webhooks.status.map(Self.describe) }
        var ingressOptions = BridgeIngressService.Options()
        ingressOptions.topic = bridgeTopic
        let ingress = BridgeIngressService(site: site, broker: broker, dataDirectory: dataDirectory, options: ingressOptions)
        let bridges = BridgeConnector(site: site, log: log)
        registry.register(.meshgate, bridges) { bridges.status() + [ingress.status()] }
        self.bridges = bridges
        bridgeIngress = ingress
    }

    /// Connectors start, restart and stop with every validated table (ingress subscriptions).
    func follow(_ manager: RouteManager) {
        manager.onApply { [mqtt] table in await mqtt.apply(table) }
    }

    /// After the route deliveries have stopped.
    func stop() async {
        await mqtt.stop()
        await webhooks.stop()
    }

    static func describe(_ s: WebhookConnectorStatus) -> [String: any Sendable] {
        var o: [String: any Sendable] = [
            "name": s.name, "type": "webhook", "url": s.url, "mode": s.mode, "state": s.state.rawValue,
            "in_flight": s.inFlight, "waiting": s.waiting, "concurrency": s.concurrency, "requests": s.requests,
            "delivered": s.delivered, "failed": s.failed,
        ]
        if let v = s.lastStatus { o["last_status"] = v }
        if let v = s.lastError { o["last_error"] = v }
        if let t = s.lastSuccess { o["last_success"] = RoutingControl.rfc3339(t) }
        if let t = s.lastFailure { o["last_failure"] = RoutingControl.rfc3339(t) }
        return o
    }

    static func describe(_ s: MQTTConnectorStatus) -> [String: any Sendable] {
        let c = s.connection
        var o: [String: any Sendable] = [
            "name": s.name, "type": "mqtt", "url": s.url, "client_id": s.clientID, "protocol": s.protocolVersion,
            "state": c.state.rawValue, "connects": c.connects, "failed_attempts": c.failedAttempts,
            "subscriptions": c.subscriptions, "received": c.received, "stored": c.stored, "published": c.published,
            "publish_failures": c.publishFailures, "ingress_routes": s.ingressRoutes, "filtered": s.filtered,
            "unrouted": s.unrouted, "rejected": s.rejected, "problems": s.problems,
        ]
        if let e = c.lastError { o["last_error"] = e }
        if let t = c.lastErrorAt { o["last_error_at"] = RoutingControl.rfc3339(t) }
        if let t = c.connectedSince { o["connected_since"] = RoutingControl.rfc3339(t) }
        return o
    }
}
