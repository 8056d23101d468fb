import Foundation
import MeshClient
import MeshCore
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
}
