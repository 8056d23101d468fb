import MeshTestSupport
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 server on raw sockets for the webhook tests: keep-alive, Content-Length
/// bodies, and a script that decides, per request, to answer, hang, or drop the connection.
/// A thread per connection: simple, and enough for loopback tests.
final class TestReceiver: @unchecked Sendable {
    struct Request: Sendable {
        let method: String
        let path: String
        /// Lower-cased names; a repeated header keeps its last value.
        let headers: [String: String]
        let body: [UInt8]
        let connection: Int
        let number: Int
        let at: ContinuousClock.Instant
        var ceID: String? { headers["ce-id"] }
    }

    enum Action: Sendable {
        case respond(status: Int, headers: [String: String] = [:], body: String = "")
        /// Read the request, then say nothing for this long and close.
        case hang(Duration)
        /// Read the request, then close without answering.
        case drop
        /// Answer (keep-alive, as far as the client can tell), then close the connection after
        /// this long: the client finds out while the connection sits idle in its cache.
        case respondThenClose(status: Int, after: Duration)
    }

    typealias Script = @Sendable (Request) -> Action

    let port: Int
    private let listener: Int32
    private struct State {
        var requests: [Request] = []
        var number = 0
        var connections = 0
        var openSockets: Set<Int32> = []
        var inFlight = 0
        var maxInFlight = 0
        var stopped = false
        var script: Script
    }
    private let state: Mutex<State>

    init(script: @escaping Script = { _ in .respond(status: 204) }) throws {
        state = Mutex(State(script: script))
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 512) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        listener = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        Thread.detachNewThread { [self] in acceptLoop(fd) }
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func setScript(_ script: @escaping Script) { state.withLock { $0.script = script } }
    var requests: [Request] { state.withLock { $0.requests } }
    var connectionCount: Int { state.withLock { $0.connections } }
    var maxInFlight: Int { state.withLock { $0.maxInFlight } }
    /// Distinct `ce-id`s answered with a 2xx.
    var delivered: Set<String> { state.withLock { Set($0.requests.compactMap { $0.ceID }) } }

    private let acceptedIDs = Mutex<Set<String>>([])
    var acknowledged: Set<String> { acceptedIDs.withLock { $0 } }

    func stop() {
        // Once only: a second close could hit a descriptor number reused since.
        // Under the lock: a connection thread closes its socket only after leaving the set, so
        // no descriptor number here can have been reused.
        let first = state.withLock { s -> Bool in
            if s.stopped { return false }
            s.stopped = true
            for fd in s.openSockets { shutdown(fd, Int32(SHUT_RDWR)) }
            return true
        }
        guard first else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    deinit { stop() }

    private func acceptLoop(_ fd: Int32) {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let (id, stopped) = state.withLock { s -> (Int, Bool) in
                s.connections += 1
                s.openSockets.insert(client)
                return (s.connections, s.stopped)
            }
            if stopped { close(client); return }
            Thread.detachNewThread { [self] in serve(client, connection: id) }
        }
    }

    private func serve(_ fd: Int32, connection: Int) {
        var reader = SocketReader(fd: fd)
        defer {
            state.withLock { _ = $0.openSockets.remove(fd) }
            close(fd)
        }
        while let head = reader.readHead() {
            let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
            let parts = lines.first?.split(separator: " ") ?? []
            guard parts.count >= 2 else { return }
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            let length = Int(headers["content-length"] ?? "0") ?? 0
            guard let body = reader.read(length) else { return }
            let (request, script) = state.withLock { s -> (Request, Script) in
                s.number += 1
                s.inFlight += 1
                s.maxInFlight = max(s.maxInFlight, s.inFlight)
                let r = Request(method: String(parts[0]), path: String(parts[1]), headers: headers, body: body, connection: connection, number: s.number, at: .now)
                s.requests.append(r)
                return (r, s.script)
            }
            let action = script(request)
            state.withLock { $0.inFlight -= 1 }
            switch action {
            case .respond(let status, let extra, let text):
                if (200..<300).contains(status), let id = request.ceID { acceptedIDs.withLock { _ = $0.insert(id) } }
                var out = "HTTP/1.1 \(status) X\r\nContent-Length: \(text.utf8.count)\r\n"
                for (k, v) in extra { out += "\(k): \(v)\r\n" }
                out += "\r\n" + text
                guard writeAll(fd, Array(out.utf8)) else { return }
            case .hang(let d):
                Thread.sleep(forTimeInterval: Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
                return
            case .drop:
                return
            case .respondThenClose(let status, let after):
                if (200..<300).contains(status), let id = request.ceID { acceptedIDs.withLock { _ = $0.insert(id) } }
                guard writeAll(fd, Array("HTTP/1.1 \(status) X\r\nContent-Length: 0\r\n\r\n".utf8)) else { return }
                Thread.sleep(forTimeInterval: Double(after.components.seconds) + Double(after.components.attoseconds) / 1e18)
                return
            }
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }
}

/// Buffered reads of HTTP heads and bodies from a blocking socket.
struct SocketReader {
    let fd: Int32
    var buffer: [UInt8] = []

    mutating func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// The request line and headers, without the final blank line; nil at end of stream.
    mutating func readHead() -> String? {
        while true {
            if let end = find([13, 10, 13, 10]) {
                let head = String(decoding: buffer[0..<end], as: UTF8.self)
                buffer.removeFirst(end + 4)
                return head
            }
            if !fill() { return nil }
        }
    }

    mutating func read(_ n: Int) -> [UInt8]? {
        while buffer.count < n { if !fill() { return nil } }
        let out = Array(buffer[0..<n])
        buffer.removeFirst(n)
        return out
    }

    private func find(_ needle: [UInt8]) -> Int? {
        guard buffer.count >= needle.count else { return nil }
        for i in 0...(buffer.count - needle.count) where buffer[i] == needle[0] && buffer[i + 1] == needle[1] && buffer[i + 2] == needle[2] && buffer[i + 3] == needle[3] {
            return i
        }
        return nil
    }
}
