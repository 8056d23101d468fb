import Foundation
import MeshHTTP
import Testing

/// Every publish mode round-trips bytes and attributes exactly, read back by fetch and by stream.
@Suite struct PublishTests {
    @Test func plainBodyGetsDefaultsAndKeepsBytes() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        let bytes: [UInt8] = (0..<300).map { UInt8(truncatingIfNeeded: $0 * 7) }  // not UTF-8
        let r = try await gw.post("/v1/publish/plain/a", bytes, headers: [("content-type", "application/octet-stream"),
                                                                            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")])
        #expect(r.status == 200, "\(r.text)")
        let receipt = try json(r)
        #expect(receipt["topic"] as? String == "plain/a")
        #expect(receipt["partition"] as? Int == 0)
        #expect(receipt["offset"] as? Int == 0)
        let events = try await gw.fetch("plain/a")
        #expect(events.count == 1)
        let e = events[0]
        #expect(e["id"] as? String == receipt["id"] as? String)
        #expect(e["source"] as? String == "meshgate://test/http")
        #expect(e["type"] as? String == "meshgate.publish")
        #expect(e["specversion"] as? String == "1.0")
        #expect(e["time"] is String)
        #expect(e["datacontenttype"] as? String == "application/octet-stream")
        #expect(e["traceparent"] as? String == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        #expect(e["topic"] as? String == "plain/a")
        #expect(e["offset"] as? Int == 0)
        #expect(try dataBytes(e) == bytes)
    }

    @Test func binaryModeCarriesEveryAttribute() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        let headers = [
            ("ce-specversion", "1.0"), ("ce-id", "evt-1"), ("ce-source", "urn:test:source"), ("ce-type", "com.example.created"),
            ("ce-subject", "orders/42"), ("ce-time", "2024-05-01T12:34:56.789Z"), ("ce-dataschema", "https://example.com/schema"),
            ("content-type", "text/plain; charset=utf-8"), ("ce-partitionkey", "customer-7"), ("ce-traceparent", "00-abc-def-01"),
            ("ce-tracestate", "vendor=1"), ("ce-region", "eu%20west"), ("CE-Priority", "high"),
        ]
        let r = try await gw.post("/v1/publish/bin/x", "héllo, wörld", headers: headers)
        #expect(r.status == 200, "\(r.text)")
        #expect(try json(r)["id"] as? String == "evt-1")
        let e = try #require(try await gw.fetch("bin/x").first)
        #expect(e["id"] as? String == "evt-1")
        #expect(e["source"] as? String == "urn:test:source")
        #expect(e["type"] as? String == "com.example.created")
        #expect(e["subject"] as? String == "orders/42")
        #expect(e["time"] as? String == "2024-05-01T12:34:56.789Z")
        #expect(e["dataschema"] as? String == "https://example.com/schema")
        #expect(e["datacontenttype"] as? String == "text/plain; charset=utf-8")
        #expect(e["partitionkey"] as? String == "customer-7")
        #expect(e["traceparent"] as? String == "00-abc-def-01")
        #expect(e["tracestate"] as? String == "vendor=1")
        #expect(e["region"] as? String == "eu west")
        #expect(e["priority"] as? String == "high")
        #expect(e["data"] as? String == "héllo, wörld")
    }

    @Test func structuredModeKeepsJSONDataTextExactly() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        let dataText = #"{"b": 1.50, "a": [true, null, "x\u00e9"],  "n": 1e3}"#
        let body = #"{"specversion":"1.0","id":"s-1","source":"/src","type":"t.created","subject":"sub","time":"2024-01-02T03:04:05Z","#
            + #""dataschema":"https://s","partitionkey":"k1","traceparent":"00-1-2-01","ext1":"v","num":42,"flag":true,"data":"# + dataText + "}"
        let r = try await gw.post("/v1/publish/structured", body, headers: [("content-type", "application/cloudevents+json; charset=utf-8")])
        #expect(r.status == 200, "\(r.text)")
        let raw = try await gw.get("/v1/fetch/structured")
        // The data member comes back as the very text that was sent.
        #expect(raw.text.contains(#""data":"# + dataText + "}"), "\(raw.text)")
        let e = try #require(try await gw.fetch("structured").first)
        #expect(e["id"] as? String == "s-1")
        #expect(e["source"] as? String == "/src")
        #expect(e["type"] as? String == "t.created")
        #expect(e["subject"] as? String == "sub")
        #expect(e["time"] as? String == "2024-01-02T03:04:05Z")
        #expect(e["dataschema"] as? String == "https://s")
        #expect(e["datacontenttype"] as? String == "application/json")
        #expect(e["partitionkey"] as? String == "k1")
        #expect(e["traceparent"] as? String == "00-1-2-01")
        #expect(e["ext1"] as? String == "v")
        #expect(e["num"] as? String == "42")
        #expect(e["flag"] as? String == "true")
    }

    @Test func structuredModeTextAndBase64Data() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        let ct = [("content-type", "application/cloudevents+json")]
        var r = try await gw.post("/v1/publish/s2", #"{"specversion":"1.0","datacontenttype":"text/plain","data":"line 1\nline \"2\""}"#, headers: ct)
        #expect(r.status == 200, "\(r.text)")
        let binary: [UInt8] = [0, 1, 2, 0xFF, 0xFE, 10, 13]
        r = try await gw.post("/v1/publish/s2", #"{"specversion":"1.0","datacontenttype":"application/octet-stream","data_base64":""# + Data(binary).base64EncodedString() + #""}"#, headers: ct)
        #expect(r.status == 200, "\(r.text)")
        let events = try await gw.fetch("s2")
        #expect(events.count == 2)
        #expect(try dataBytes(events[0]) == Array("line 1\nline \"2\"".utf8))
        #expect(events[0]["source"] as? String == "meshgate://test/http")
        #expect(try dataBytes(events[1]) == binary)
        #expect(events[1]["data_base64"] != nil)
    }

    @Test func batchModeAnswersReceiptsInOrder() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        let items = (0..<25).map { #"{"specversion":"1.0","id":"b-\#($0)","source":"s","type":"t","data":{"i":\#($0)}}"# }
        let r = try await gw.post("/v1/publish/batch/t", "[" + items.joined(separator: ",") + "]",
                                  headers: [("content-type", "application/cloudevents-batch+json")])
        #expect(r.status == 200, "\(r.text)")
        let receipts = try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [[String: Any]])
        #expect(receipts.map { $0["id"] as? String } == (0..<25).map { "b-\($0)" })
        #expect(receipts.map { $0["offset"] as? Int } == Array(0..<25))
        let events = try await gw.fetch("batch/t")
        #expect(events.map { $0["id"] as? String } == (0..<25).map { "b-\($0)" })
        #expect(try events.map { try dataBytes($0) } == (0..<25).map { Array(#"{"i":\#($0)}"#.utf8) })
    }

    @Test func streamReadsBackWhatWasPublished() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        _ = try await gw.post("/v1/publish/rt/one", "first", headers: [("content-type", "text/plain"), ("ce-id", "r1"), ("ce-specversion", "1.0")])
        let sse = try await SSEClient(port: gw.port, path: "/v1/stream/rt/%23?from=earliest")
        #expect(sse.status == 200)
        let multiLine = "{\n  \"k\": \"v\"\r\n}"
        _ = try await gw.post("/v1/publish/rt/two", #"{"specversion":"1.0","id":"r2","data":"# + multiLine + "}",
                              headers: [("content-type", "application/cloudevents+json")])
        let a = try #require(try await sse.next())
        #expect(a.json["id"] as? String == "r1")
        #expect(a.json["data"] as? String == "first")
        #expect(a.json["topic"] as? String == "rt/one")
        #expect(a.json["partition"] as? Int == 0)
        #expect(a.json["offset"] as? Int == 0)
        let b = try #require(try await sse.next())
        #expect(b.json["id"] as? String == "r2")
        #expect((b.json["data"] as? [String: Any])?["k"] as? String == "v")
        await sse.close()
    }
}
