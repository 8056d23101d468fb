#if canImport(Glibc)
import Glibc
#endif
import Foundation
import MeshHTTP
import Testing

/// Each bad request gets its precise problem+json, and the server keeps serving.
@Suite struct BadInputTests {
    let structured = [("content-type", "application/cloudevents+json")]

    @Test func malformedJSONNamesTheByteOffset() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        try expectProblem(try await gw.post("/v1/publish/t", #"{"specversion":"1.0","id":}"#, headers: structured), 400, "json.invalid", detail: "at byte 26")
        try expectProblem(try await gw.post("/v1/publish/t", #"{"specversion":"1.0"} x"#, headers: structured), 400, "json.invalid", detail: "after the end")
        try expectProblem(try await gw.post("/v1/publish/t", #"[1]"#, headers: structured), 400, "json.invalid", detail: "expected a CloudEvent object")
        try expectProblem(try await gw.post("/v1/publish/t", #"{"specversion":"1.0","a":1,"a":2}"#, headers: structured), 400, "json.invalid", detail: "appears twice")
        try expectProblem(try await gw.post("/v1/publish/t", #"{"specversion":"1.0"}"#, headers: [("content-type", "application/cloudevents-batch+json")]),
                          400, "json.invalid", detail: "expected an array")
        #expect(try await gw.get("/healthz").status == 200)
    }

    @Test func invalidCloudEventsNameTheAttribute() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        try expectProblem(try await gw.post("/v1/publish/t", #"{"specversion":"0.3"}"#, headers: structured), 400, "specversion.unsupported", detail: "0.3")
        try expectProblem(try await gw.post("/v1/publish/t", "x", headers: [("ce-specversion", "2.0")]), 400, "specversion.unsupported", detail: "2.0")
        try expectProblem(try await gw.post("/v1/publish/t", #"{"id":"x"}"#, headers: structured), 400, "event.invalid", detail: "specversion")
        try expectProblem(try await gw.post("/v1/publish/t", #"{"specversion":"1.0","id":5}"#, headers: structured), 400, "event.invalid", detail: "\"id\" must be a string")
        try expectProblem(try await gw.post("/v1/publish/t", #"{"specversion":"1.0","time":"yesterday"}"#, headers: structured), 400, "event.invalid", detail: "time")
        try expectProblem(try await gw.post("/v1/publish/t", #"{"specversion":"1.0","Bad-Name":"x"}"#, headers: structured), 400, "event.invalid", detail: "Bad-Name")
        try expectProblem(try await gw.post("/v1/publish/t", #"{"specversion":"1.0","data":1,"data_base64":"AA=="}"#, headers: structured), 400, "event.invalid", detail: "not both")
        try expectProblem(try await gw.post("/v1/publish/t", #"{"specversion":"1.0","data_base64":"@@@"}"#, headers: structured), 400, "event.invalid", detail: "base64")
        try expectProblem(try await gw.post("/v1/publish/t", "x", headers: [("ce-time", "2024-13-01T00:00:00Z")]), 400, "event.invalid", detail: "ce-time")
        try expectProblem(try await gw.post("/v1/publish/t", "x", headers: [("ce-under_score", "v")]), 400, "event.invalid", detail: "under_score")
        let batch = #"[{"specversion":"1.0"},{"specversion":"1.0","type":false}]"#
        try expectProblem(try await gw.post("/v1/publish/t", batch, headers: [("content-type", "application/cloudevents-batch+json")]),
                          400, "event.invalid", detail: "event 1 of the batch")
        // Nothing from the refused batch was stored.
        try expectProblem(try await gw.get("/v1/fetch/t"), 404, "topic.unknown")
    }

    @Test func invalidTopicsAndUnknownRoutes() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        try expectProblem(try await gw.post("/v1/publish/a//b", "x"), 400, "topic.invalid", detail: "empty")
        try expectProblem(try await gw.post("/v1/publish/a/%2B", "x"), 400, "topic.invalid")
        try expectProblem(try await gw.post("/v1/publish/a%20b", "x"), 400, "topic.invalid")
        try expectProblem(try await gw.post("/v1/publish/a%zz", "x"), 400, "request.invalid", detail: "percent")
        try expectProblem(try await gw.get("/v1/nowhere"), 404, "route.not_found", detail: "/v1/nowhere")
        try expectProblem(try await gw.get("/metrics/x"), 404, "route.not_found")
        let r = try await gw.get("/v1/publish/t")
        try expectProblem(r, 405, "method.not_allowed", detail: "GET")
        #expect(r.header("allow") == "POST")
        try expectProblem(try await gw.client.request(.DELETE, "/v1/status"), 405, "method.not_allowed")
        #expect(try await gw.get("/healthz").status == 200)
    }

    @Test func oversizedBodiesAre413WithoutReadingThemWhole() async throws {
        let gw = try await TestGateway { $0.maxEventBytes = 4096 }
        defer { Task { try await gw.stop() } }
        // Announced too large: answered at once, though not one body byte was sent.
        let head = "POST /v1/publish/big HTTP/1.1\r\nhost: x\r\ncontent-length: 100000000\r\n\r\n"
        let early = try await rawExchange(port: gw.port, Array(head.utf8), timeout: .seconds(5)) { $0.contains("}") }
        #expect(early.hasPrefix("HTTP/1.1 413"), "\(early)")
        #expect(early.contains("https://meshgate.dev/problems/request.too_large"))
        #expect(early.lowercased().contains("connection: close"))
        // Chunked, with no length: refused once the limit is crossed.
        var chunked = "POST /v1/publish/big HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
        for _ in 0..<3 { chunked += "800\r\n" + String(repeating: "z", count: 2048) + "\r\n" }
        let streamed = try await rawExchange(port: gw.port, Array(chunked.utf8), timeout: .seconds(5)) { $0.contains("}") }
        #expect(streamed.hasPrefix("HTTP/1.1 413"), "\(streamed)")
        // Exactly the limit is fine; one byte more is not.
        #expect(try await gw.post("/v1/publish/big", [UInt8](repeating: 1, count: 4096)).status == 200)
        try expectProblem(try await gw.post("/v1/publish/big", [UInt8](repeating: 1, count: 4097)), 413, "request.too_large")
        // Structured data past the event limit is refused by the broker.
        let b64 = Data(repeating: 7, count: 5000).base64EncodedString()
        try expectProblem(try await gw.post("/v1/publish/big", #"{"specversion":"1.0","data_base64":""# + b64 + #""}"#, headers: structured),
                          413, "event.too_large")
        #expect(try await gw.get("/healthz").status == 200)
    }

    /// Connections reset by the client (a RST, no request) hand the HTTP handler an I/O error while
    /// nothing is being answered: it must close, not answer (NIO refuses a response then) nor crash.
    @Test func connectionsResetBeforeAnyRequestAreClosedQuietly() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        for _ in 0..<50 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = UInt16(gw.port).bigEndian
            let connected = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            #expect(connected == 0)
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            close(fd)  // RST
        }
        #expect(try await gw.get("/healthz").status == 200)
    }

    @Test func malformedHTTPAndHugeHeaders() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        let garbage = try await rawExchange(port: gw.port, Array("HELLO THERE\r\n\r\n".utf8))
        #expect(garbage.hasPrefix("HTTP/1.1 400"), "\(garbage)")
        #expect(garbage.contains("http.malformed"))
        let big = "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: \(String(repeating: "a", count: 20000))\r\n\r\n"
        let headers = try await rawExchange(port: gw.port, Array(big.utf8))
        #expect(headers.hasPrefix("HTTP/1.1 431"), "\(headers.prefix(200))")
        #expect(try await gw.get("/healthz").status == 200)
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        var wire = ""
        for i in 0..<20 {
            wire += "POST /v1/publish/pipe HTTP/1.1\r\nhost: x\r\nce-id: p\(i)\r\ncontent-length: \(String(i).count)\r\n\r\n\(i)"
        }
        wire += "GET /v1/nope HTTP/1.1\r\nhost: x\r\n\r\n"
        wire += "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        let out = try await rawExchange(port: gw.port, Array(wire.utf8)) { $0.contains(#"{"status":"ok"}"#) }
        var at = out.startIndex
        for i in 0..<20 {
            let r = try #require(out.range(of: #"{"id":"p\#(i)","topic":"pipe","partition":0,"offset":\#(i)}"#, range: at..<out.endIndex), "receipt \(i)")
            at = r.upperBound
        }
        let notFound = try #require(out.range(of: "HTTP/1.1 404", range: at..<out.endIndex))
        #expect(out.range(of: #"{"status":"ok"}"#, range: notFound.upperBound..<out.endIndex) != nil)
    }

    /// Pipelined input is taken up in order after each answer, malformed input included: requests
    /// answered at once (404, healthz) behind a publish that waits for the log, a request whose
    /// body is sent in the same write, and a malformed request last, answered 400 after all of them.
    @Test func pipelinedInputAfterAWaitingPublishIsAnsweredInOrderUpToAMalformedRequest() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        var wire = "POST /v1/publish/pipe2 HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\none"
        wire += "GET /v1/nope HTTP/1.1\r\nhost: x\r\n\r\n"
        wire += "POST /v1/publish/pipe2 HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\ntwo"
        wire += "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
        wire += "NOT HTTP AT ALL\r\n\r\n"
        let out = try await rawExchange(port: gw.port, Array(wire.utf8)) { $0.contains("http.malformed") }
        let marks = [#""topic":"pipe2","partition":0,"offset":0}"#, "HTTP/1.1 404", #""topic":"pipe2","partition":0,"offset":1}"#,
                     #"{"status":"ok"}"#, "HTTP/1.1 400"]
        var at = out.startIndex
        for mark in marks {
            let r = try #require(out.range(of: mark, range: at..<out.endIndex), "\(mark) in order in \(out)")
            at = r.upperBound
        }
        // The connection's bytes can no longer be trusted: closed after the 400, and the server serves on.
        #expect(out.contains("connection: close"))
        #expect(try await gw.get("/healthz").status == 200)
    }

    @Test func adminEndpoints() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        _ = try await gw.post("/v1/publish/adm/x", "1")
        let status = try json(try await gw.get("/v1/status"))
        #expect(status["node"] as? String == "test")
        #expect(status["version"] as? String == "0.1.0")
        #expect(status["ready"] as? Bool == true)
        let listeners = try #require(status["listeners"] as? [[String: Any]])
        #expect(listeners.map { $0["name"] as? String } == ["http", "tcp"])
        #expect((listeners[1]["port"] as? Int ?? 0) > 0)
        #expect(listeners[0]["name"] as? String == "http")
        #expect(listeners[0]["port"] as? Int == gw.port)
        #expect(listeners[0]["address"] as? String == "127.0.0.1:\(gw.port)")
        let topics = try #require(try json(try await gw.get("/v1/topics"))["topics"] as? [[String: Any]])
        #expect(topics.map { $0["name"] as? String } == ["adm/x"])
        #expect(topics[0]["durability"] as? String == "always")
        #expect((topics[0]["partitions"] as? [[String: Any]])?.first?["end_offset"] as? Int == 1)
        #expect(try await gw.get("/healthz").text == #"{"status":"ok"}"#)
        #expect(try await gw.get("/readyz").status == 200)
        gw.gateway.status.setNotReady("storage", "disk is full")
        try expectProblem(try await gw.get("/readyz"), 503, "not_ready", detail: "disk is full")
        gw.gateway.status.setNotReady("storage", nil)
        #expect(try await gw.get("/readyz").status == 200)
    }
}
