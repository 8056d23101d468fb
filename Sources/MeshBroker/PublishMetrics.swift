import CoreMetrics
import Synchronization

/// Publish metrics through swift-metrics, labelled by API (`api`: the ingress — `http`, `tcp`, or
/// a connector's ingress name). Instruments are made once per API and cached; past
/// `maxAPIs` distinct names further ones share the `other` label, so a connector that invents
/// ingress names cannot grow the label set without bound.
final class PublishMetrics: Sendable {
    /// A class, so the publish path hands one reference around rather than copying five.
    final class API: Sendable {
        let events: CoreMetrics.Counter
        let bytes: CoreMetrics.Counter
        /// From the broker accepting a publish request to its last event being durable.
        let latency: CoreMetrics.Timer
        let factory: any MetricsFactory
        let name: String

        init(events: CoreMetrics.Counter, bytes: CoreMetrics.Counter, latency: CoreMetrics.Timer, factory: any MetricsFactory, name: String) {
            self.events = events
            self.bytes = bytes
            self.latency = latency
            self.factory = factory
            self.name = name
        }

        func failed(_ code: BrokerError.Code) {
            Counter(label: "meshgate_publish_errors_total", dimensions: [("api", name), ("code", code.rawValue)], factory: factory)
                .increment()
        }
    }

    static let maxAPIs = 16
    private let factory: any MetricsFactory
    private let apis = Mutex<[String: API]>([:])

    init(factory: any MetricsFactory) { self.factory = factory }

    func api(_ name: String) -> API {
        if let known = apis.withLock({ $0[name] }) { return known }
        return apis.withLock { apis in
            if let known = apis[name] { return known }
            let label = apis.count < Self.maxAPIs ? name : "other"
            let dims = [("api", label)]
            let api = API(events: Counter(label: "meshgate_publish_events_total", dimensions: dims, factory: factory),
                          bytes: Counter(label: "meshgate_publish_bytes_total", dimensions: dims, factory: factory),
                          latency: Timer(label: "meshgate_publish_seconds", dimensions: dims, preferredDisplayUnit: .seconds, factory: factory),
                          factory: factory, name: label)
            if apis.count < Self.maxAPIs { apis[name] = api }
            return api
        }
    }
}
