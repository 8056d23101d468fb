import MeshTestSupport
import Foundation
import Logging
import MeshConfig
import MeshCore
import MeshLog
import MeshRouting
@testable import MeshWebhook

final class ScratchDirectory {
    let path: String
    init(_ name: String = #function) {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        path = NSTemporaryDirectory() + "meshgate-webhook-\(safe)-\(UUID().uuidString.prefix(8))"
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

func table(_ yaml: String, environment: [String: String] = [:]) throws -> RouteTable {
    try RouteLoader.load(sources: [("routes.yaml", yaml)], environment: environment)
}

/// A connector spec as the route loader would build it.
func connector(_ yaml: String, environment: [String: String] = [:]) throws -> ConnectorSpec {
    let t = try table("version: 1\nconnectors:\n  hook: \(yaml)\n", environment: environment)
    return t.connectors["hook"]!
}

func endpoint(_ yaml: String, loop: CurlLoop) throws -> WebhookEndpoint {
    let spec = try connector(yaml)
    return WebhookEndpoint(spec: spec, config: try WebhookConfig(spec), loop: loop, logger: quietLogger)
}

func event(_ id: String, topic: String = "orders/eu", data: String = #"{"total":5}"#, contentType: String? = "application/json") -> Event {
    Event(topic: try! Topic(topic), id: id, source: "test", type: "order.created", datacontenttype: contentType, data: Array(data.utf8))
}


/// The repository root, found from this file's path.
let repositoryRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
