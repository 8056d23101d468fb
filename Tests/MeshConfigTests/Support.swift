import MeshTestSupport
import Foundation
import Logging
import MeshConfig
import MeshCore
import MeshLog
import MeshRouting
import Synchronization

final class ScratchDirectory {
    let path: String
    init(_ name: String = #function) {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        path = NSTemporaryDirectory() + "meshgate-routes-\(safe)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

let quietLogger: Logger = {
    var l = Logger(label: "test")
    l.logLevel = .critical
    return l
}()

func openLog(_ dir: String) throws -> DurableLog {
    var o = LogOptions()
    o.retentionCheckMicros = nil
    o.defaultTopic = TopicConfig(partitions: 1, durability: .none)
    return try DurableLog(directory: dir + "/data", options: o, logger: quietLogger)
}

func table(_ yaml: String, file: String = "routes.yaml") throws -> RouteTable {
    try RouteLoader.load(sources: [(file, yaml)], environment: [:])
}

@discardableResult
func publish(_ log: DurableLog, _ topic: String, id: String, type: String = "t", key: String? = nil, data: String = "{}") async throws -> Int64 {
    let t = try log.createTopic(try Topic(topic), config: TopicConfig(partitions: 2, durability: .none))
    let e = Event(topic: try Topic(topic), id: id, source: "test", type: type, partitionKey: key, data: Array(data.utf8))
    return try await t.append(EventCodec.encode(e), key: key).offset
}

/// A destination that fails on command, recording every attempt.
final class ScriptedDestination: Destination {
    struct State {
        var received: [Event] = []
        var attempts: [(id: String, at: ContinuousClock.Instant)] = []
        var failuresLeft = 0
        var failForever = false
        var failure = DeliveryError("scripted failure", status: 503)
        var delay: Duration = .zero
    }
    let state = Mutex(State())

    func deliver(_ event: Event) async throws(DeliveryError) {
        let (fail, error, delay) = state.withLock { s -> (Bool, DeliveryError, Duration) in
            s.attempts.append((event.id, ContinuousClock.now))
            if s.failForever { return (true, s.failure, s.delay) }
            if s.failuresLeft > 0 { s.failuresLeft -= 1; return (true, s.failure, s.delay) }
            return (false, s.failure, s.delay)
        }
        if delay > .zero { try? await Task.sleep(for: delay) }
        if fail { throw error }
        state.withLock { $0.received.append(event) }
    }

    var received: [Event] { state.withLock { $0.received } }
    var attemptCount: Int { state.withLock { $0.attempts.count } }
}

struct TestProvider: DestinationProvider {
    let byConnector: [String: ScriptedDestination]
    func destination(for connector: ConnectorSpec, route: Route, spec: DestinationSpec) -> (any Destination)? {
        byConnector[connector.name]
    }
}
