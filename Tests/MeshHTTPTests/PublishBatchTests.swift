import Foundation
import MeshHTTP
import MeshTestSupport
import Testing

/// The publishes one event loop decodes from many connections in one iteration go to the broker as
/// one batch (docs/architecture.md, "Threads of the HTTP listener"). Batching must not show: each
/// request is answered on its own connection, in that connection's order, and a bad request fails
/// alone.
@Suite struct PublishBatchTests {
    /// One answer read off the wire: status, body.
    struct Answer {
        let status: Int
        let body: String
    }

    /// Splits the bytes of consecutive HTTP/1.1 responses (each with a content-length).
    static func answers(_ wire: String) throws -> [Answer] {
        var out: [Answer] = []
        var rest = Substring(wire)
        while let start = rest.range(of: "HTTP/1.1 ") {
            rest = rest[start.upperBound...]
            let status = try #require(Int(rest.prefix(3)))
            let headEnd = try #require(rest.range(of: "\r\n\r\n"))
            let head = rest[..<headEnd.lowerBound].lowercased()
            let lengthLine = try #require(head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") })
            let length = try #require(Int(lengthLine.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)))
            let body = rest[headEnd.upperBound...].utf8.prefix(length)
            out.append(Answer(status: status, body: try #require(String(body))))
            rest = rest[body.endIndex...]
        }
        return out
    }

    /// A keep-alive `200` JSON answer goes out already encoded, past NIO's HTTP encoder. Its bytes
    /// are the encoder's, and answers the encoder writes (a problem, a close) before and after it on
    /// the same connection stay whole and in order.
    @Test func preEncodedAnswersInterleaveWithEncodedOnes() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        let publish = "POST /v1/publish/wire/t HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nabc"
        let missing = "GET /v1/nothing-here HTTP/1.1\r\nhost: x\r\n\r\n"
        let last = "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        let wire = try await rawExchange(port: gw.port, Array((missing + publish + missing + publish + publish + last).utf8))
        let answers = try Self.answers(wire)
        #expect(answers.map(\.status) == [404, 200, 404, 200, 200, 200], "\(wire)")
        for (i, offset) in [(1, 0), (3, 1), (4, 2)] {
            #expect(answers[i].body.hasSuffix(#""topic":"wire/t","partition":0,"offset":\#(offset)}"#), "\(answers[i].body)")
        }
        let receipt = answers[1].body
        #expect(wire.contains(#""code":"route.not_found"}"# + "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: \(receipt.utf8.count)\r\n\r\n\(receipt)HTTP/1.1 404 "),
                "a receipt's answer is exactly the encoder's head and the body, then the next answer:\n\(wire)")
        #expect(wire.hasSuffix(#"{"status":"ok"}"#))
        #expect(wire.contains("connection: close"))
    }

    @Test func concurrentConnectionsGetTheirOwnAnswersInOrderAndABadRequestFailsAlone() async throws {
        let gw = try await TestGateway { $0.maxEventBytes = 64 }
        defer { Task { try await gw.stop() } }
        let connections = 24, perConnection = 12
        // Each connection pipelines its publishes; on every third connection one of them is a
        // structured event whose data is over the broker's limit (the listener lets structured
        // bodies up to 8 MiB through: the broker refuses it, inside a batch of good ones).
        func bad(_ c: Int) -> Int? { c % 3 == 0 ? c % perConnection : nil }
        let big = String(repeating: "x", count: 200)
        let results = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for c in 0..<connections {
                group.addTask {
                    var wire = ""
                    for i in 0..<perConnection {
                        if bad(c) == i {
                            let body = #"{"specversion":"1.0","id":"big-\#(c)","source":"t","type":"t","data":"\#(big)"}"#
                            wire += "POST /v1/publish/batch/t HTTP/1.1\r\nhost: x\r\ncontent-type: application/cloudevents+json\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)"
                        } else {
                            let body = "c\(c)-r\(i)"
                            wire += "POST /v1/publish/batch/t HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)"
                        }
                    }
                    wire += "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
                    return (c, try await rawExchange(port: gw.port, Array(wire.utf8), timeout: .seconds(30)))
                }
            }
            var all: [Int: String] = [:]
            for try await (c, text) in group { all[c] = text }
            return all
        }
        let stored = try await gw.fetch("batch/t", max: 1000)
        #expect(stored.count == connections * perConnection - (0..<connections).filter { bad($0) != nil }.count)
        var dataAt: [Int: String] = [:]
        for e in stored {
            if let offset = e["offset"] as? Int { dataAt[offset] = String(decoding: try dataBytes(e), as: UTF8.self) }
        }
        for c in 0..<connections {
            let answers = try Self.answers(try #require(results[c]))
            try #require(answers.count == perConnection + 1, "connection \(c): \(results[c] ?? "")")
            var lastOffset = -1
            for i in 0..<perConnection {
                let a = answers[i]
                if bad(c) == i {
                    #expect(a.status == 413, "connection \(c) request \(i): \(a.body)")
                    #expect(a.body.contains(#""code":"event.too_large""#), "\(a.body)")
                    continue
                }
                #expect(a.status == 200, "connection \(c) request \(i): \(a.body)")
                let receipt = try #require(try JSONSerialization.jsonObject(with: Data(a.body.utf8)) as? [String: Any])
                let offset = try #require(receipt["offset"] as? Int)
                // This connection's own event is at the offset it was told, after its earlier ones.
                #expect(dataAt[offset] == "c\(c)-r\(i)", "connection \(c) request \(i) got offset \(offset)")
                #expect(offset > lastOffset)
                lastOffset = offset
            }
            #expect(answers[perConnection].status == 200 && answers[perConnection].body == #"{"status":"ok"}"#)
        }
    }
}

extension PublishBatchTests {
    /// A client that writes far more pipelined publishes than the listener reads ahead (16 KiB)
    /// before reading any answer still gets every one, in order.
    @Test func aLongPipelineBeyondTheReadAheadIsAnsweredInOrder() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        let count = 400
        var wire = ""
        for i in 0..<count {
            let body = "p\(i)-" + String(repeating: "y", count: 100)
            wire += "POST /v1/publish/batch/long HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)"
        }
        #expect(wire.utf8.count > 3 * (16 << 10))
        wire += "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        let answers = try Self.answers(try await rawExchange(port: gw.port, Array(wire.utf8), timeout: .seconds(30)))
        try #require(answers.count == count + 1)
        for i in 0..<count {
            #expect(answers[i].status == 200)
            #expect(answers[i].body.contains(#""offset":\#(i)}"#), "answer \(i): \(answers[i].body)")
        }
        #expect(answers[count].body == #"{"status":"ok"}"#)
    }
}

#if canImport(Glibc)
import Glibc
#endif

extension PublishBatchTests {
    /// While a request waits for its answer (a long-poll fetch here), pipelined requests behind it
    /// are held and the listener stops reading, so a client cannot make it buffer more than about
    /// a read's worth of requests. The client below can write only as much as the two sockets'
    /// buffers hold before its writes stop (about 370 KiB here); a listener that went on reading
    /// took 9 MiB in the 1.5 s of a debug build, and would take all 64 MiB given the time.
    @Test func pipelinedRequestsBehindAWaitingOneStopTheReading() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        #expect(try await gw.post("/v1/publish/hold/t", "first").status == 200)
        let fd = try rawConnection(port: gw.port, sendBuffer: 64 << 10)
        defer { close(fd) }
        // Offset 1 does not exist yet: the fetch waits 3 s for it.
        let wire = Array("GET /v1/fetch/hold/t?offset=1&wait_ms=3000 HTTP/1.1\r\nhost: x\r\n\r\n".utf8)
        _ = wire.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        let filler = Array(String(repeating: "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n", count: 2048).utf8)
        let written = try await sendRepeatedly(fd, filler, for: .milliseconds(1500), atMost: 64 << 20)
        #expect(written < 4 << 20, "the listener read \(written >> 10) KiB of requests queued behind a waiting one")
        #expect(written > 0)
        // The listener serves on.
        #expect(try await gw.get("/healthz").status == 200)
    }

    /// A client that pipelines requests and never reads the answers: once the answers fill the
    /// sockets and the listener's outbound buffer (the channel turns unwritable), the listener
    /// stops reading, so what it holds stays bounded. Each request here is a 60-byte fetch whose
    /// answer carries a 512 KiB event; the test process, which is the server, must not grow by more
    /// than a few answers. A listener that read on kept every answer: the process grew by
    /// 162 MiB in the 3 s of a debug build (2 MiB with the reading held).
    @Test func answersTheClientDoesNotReadStopTheReading() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        #expect(try await gw.post("/v1/publish/big/t", [UInt8](repeating: 0x61, count: 512 << 10)).status == 200)
        // A small receive buffer, so the window the client offers stays small.
        let fd = try rawConnection(port: gw.port, receiveBuffer: 4 << 10)
        defer { close(fd) }
        let filler = Array(String(repeating: "GET /v1/fetch/big/t?max=1 HTTP/1.1\r\nhost: x\r\n\r\n", count: 256).utf8)
        let before = try residentBytes()
        let written = try await sendRepeatedly(fd, filler, for: .milliseconds(3000))
        let grown = try residentBytes() - before
        #expect(written > 0)
        #expect(grown < 48 << 20, "the listener's process grew by \(grown >> 20) MiB of answers no one read")
        #expect(try await gw.get("/healthz").status == 200)
    }
}

/// A non-blocking loopback TCP connection to `port`, its buffer sizes set before connecting.
private func rawConnection(port: Int, sendBuffer: Int32? = nil, receiveBuffer: Int32? = nil) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    try #require(fd >= 0)
    for (option, size) in [(SO_SNDBUF, sendBuffer), (SO_RCVBUF, receiveBuffer)] {
        guard var size else { continue }
        setsockopt(fd, SOL_SOCKET, option, &size, socklen_t(MemoryLayout<Int32>.size))
    }
    var addr = loopbackAddress(port: port)
    let connected = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard connected == 0 else {
        close(fd)
        throw AdminClient.Failure(description: "connect: errno \(errno)")
    }
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    return fd
}

/// Sends `chunk` over and over for `duration` (or until `atMost` bytes), waiting while the socket
/// is full; a partial send continues where it stopped, so no request is cut. Returns the bytes sent.
private func sendRepeatedly(_ fd: Int32, _ chunk: [UInt8], for duration: Duration, atMost: Int = .max) async throws -> Int {
    let until = ContinuousClock.now + duration
    var written = 0, at = 0
    while written < atMost, ContinuousClock.now < until {
        let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress! + at, $0.count - at, Int32(MSG_NOSIGNAL)) }
        if n > 0 {
            written += n
            at = (at + n) % chunk.count
        } else {
            try #require(errno == EAGAIN || errno == EWOULDBLOCK, "send failed: errno \(errno)")
            try await Task.sleep(for: .milliseconds(5))
        }
    }
    return written
}

/// The resident memory of this process (/proc/self/statm), in bytes.
private func residentBytes() throws -> Int {
    let text = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8)
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { throw AdminClient.Failure(description: "statm: \(text)") }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
