import Foundation
import MeshClient
import MeshCore
import MeshTestSupport
import Testing

/// W3C trace context is carried unchanged from the publisher through the log to every reader and
/// every routed copy (SPEC §1).
@Suite struct TraceContextTests {
    static let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    static let tracestate = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"

    @Test(arguments: ["plain", "binary"])
    func headersComeBackFromFetchSSEAndARoutedCopy(mode: String) async throws {
        let gw = try await TestGateway("trace-\(mode)") { writeRoutes(auditAndBrokenRoutes, into: &$0) }
        _ = try await gw.scrape { $0.value("meshgate_routes_loaded") == 1 }
        let sse = try await SSEClient(port: gw.port, path: "/v1/stream/orders/%23?from=earliest")
        #expect(sse.status == 200)
        var headers = [("traceparent", Self.traceparent), ("tracestate", Self.tracestate)]
        if mode == "binary" {
            headers += [("ce-specversion", "1.0"), ("ce-id", "t-1"), ("ce-source", "/test"), ("ce-type", "trace.test")]
        }
        #expect(try await gw.post("/v1/publish/orders/eu", "traced", headers: headers).status == 200)

        let fetched = try #require(try await gw.fetch("orders/eu").first)
        #expect(fetched["traceparent"] as? String == Self.traceparent)
        #expect(fetched["tracestate"] as? String == Self.tracestate)

        let streamed = try #require(try await sse.next()).json
        #expect(streamed["traceparent"] as? String == Self.traceparent)
        #expect(streamed["tracestate"] as? String == Self.tracestate)
        await sse.close()

        _ = try await gw.scrape { $0.value("meshgate_route_delivered_total", ["route": "audit"]) == 1 }
        let copy = try #require(try await gw.fetch("audit/orders/eu").first)
        #expect(copy["traceparent"] as? String == Self.traceparent)
        #expect(copy["tracestate"] as? String == Self.tracestate)
        #expect(String(decoding: try dataBytes(copy), as: UTF8.self) == "traced")
        try await gw.stop()
    }

    @Test func tcpPublishKeepsTraceContextForHTTPReaders() async throws {
        let gw = try await TestGateway()
        let client = try await MeshClient.connect(port: try await gw.tcpPort(), name: "trace")
        var event = Event(topic: try Topic("t/tcp"), data: Array("x".utf8))
        event.traceparent = Self.traceparent
        event.tracestate = Self.tracestate
        _ = try await client.publish(event)
        let sub = try await client.subscribe(try TopicPattern("t/#"), from: .earliest)
        for try await d in sub {
            #expect(d.event.traceparent == Self.traceparent)
            #expect(d.event.tracestate == Self.tracestate)
            break
        }
        await client.close()
        let fetched = try #require(try await gw.fetch("t/tcp").first)
        #expect(fetched["traceparent"] as? String == Self.traceparent)
        #expect(fetched["tracestate"] as? String == Self.tracestate)
        try await gw.stop()
    }

    /// A trace started by an HTTP publisher follows the event out of the gateway: to a webhook
    /// receiver (an HTTP stack no one here wrote, examples/webhook-fanout/receiver.py) and across a
    /// bridge to a second site, unchanged.
    @Test func aTraceFollowsTheEventToAWebhookAndAcrossABridge() async throws {
        let siteB = try await TestGateway("trace-site-b") { $0.node = "site-b" }
        let bridgePort = try await siteB.tcpPort()
        let receiverLog = siteB.dir.path + "/receiver.jsonl"
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let receiver = try ChildProcess("python3", [root + "/examples/webhook-fanout/receiver.py", "--port", "0", "--log", receiverLog])
        defer { receiver.signal(SIGKILL) }
        #expect(await receiver.waitForOutput(containing: "\n"))
        let url = try #require(receiver.text.split(separator: "\n").first.map { String($0.dropFirst("listening on ".count)) })
        let siteA = try await TestGateway("trace-site-a") {
            $0.node = "site-a"
            writeRoutes("""
                version: 1
                connectors:
                  hook: {type: webhook, url: "\(url)/hook"}
                  site-b: {type: meshgate, url: "tcp://127.0.0.1:\(bridgePort)"}
                routes:
                  - name: out
                    from: "orders/#"
                    to: [{connector: hook}, {connector: site-b, topic: "from-a/{topic}"}]
                """, into: &$0)
        }
        _ = try await siteA.scrape { $0.value("meshgate_routes_loaded") == 1 }
        let headers = [("traceparent", Self.traceparent), ("tracestate", Self.tracestate)]
        #expect(try await siteA.post("/v1/publish/orders/eu", "traced", headers: headers).status == 200)

        func hooked() -> [String: Any]? {
            guard let text = try? String(contentsOfFile: receiverLog, encoding: .utf8), let line = text.split(separator: "\n").first else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }
        #expect(await eventually(30) { hooked() != nil })
        let request = try #require(hooked())
        #expect(request["path"] as? String == "/hook")
        #expect(request["traceparent"] as? String == Self.traceparent)
        #expect(request["tracestate"] as? String == Self.tracestate)

        var bridged: [[String: Any]] = []
        for _ in 0..<300 where bridged.isEmpty {
            let r = try await siteB.get("/v1/fetch/from-a/orders/eu?partition=0&offset=0&max=10")
            if r.status == 200 { bridged = (try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["events"] as? [[String: Any]] ?? [] }
            if bridged.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
        }
        let copy = try #require(bridged.first, "nothing arrived at site B")
        #expect(copy["traceparent"] as? String == Self.traceparent)
        #expect(copy["tracestate"] as? String == Self.tracestate)
        #expect(String(decoding: try dataBytes(copy), as: UTF8.self) == "traced")
        try await siteA.stop()
        try await siteB.stop()
    }
}
