#if canImport(Glibc)
import Glibc
#endif
import Foundation
import MeshTestSupport
import Synchronization

/// A TCP proxy on loopback that breaks the link between two sites on command: it forwards bytes
/// both ways until told to drop (close every connection and refuse new ones), stall (keep the
/// connections open but forward nothing) or reset (abort every connection with a TCP RST).
/// Plain sockets on threads of its own, so no test task ever blocks on it.
final class FaultProxy: Sendable {
    enum Mode: Sendable, Equatable {
        case pass
        /// Connections are closed and new ones closed as soon as they are accepted.
        case drop
        /// Connections stay open; no byte moves in either direction.
        case stall
    }

    let port: Int
    private let upstreamPort: Int
    private let listener: Int32
    private struct State {
        var mode = Mode.pass
        var connections: Set<Int32> = []
        var accepted = 0
        var stopped = false
    }
    private let state = Mutex(State())

    init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        (listener, port) = try listenOnLoopback(backlog: 64)
        Thread { [self] in acceptLoop() }.start()
    }

    /// Connections accepted so far (each reconnect of the bridge is one).
    var accepted: Int { state.withLock { $0.accepted } }

    func set(_ mode: Mode) {
        let victims = state.withLock { s -> Set<Int32> in
            s.mode = mode
            return mode == .drop ? s.connections : []
        }
        for fd in victims { shutdown(fd, Int32(SHUT_RD)) }
    }

    /// Aborts every open connection with a RST (SO_LINGER 0); new connections are served.
    func reset() {
        let victims = state.withLock { $0.connections }
        for fd in victims {
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            // Wakes the pumps without sending anything; their close then sends the RST.
            shutdown(fd, Int32(SHUT_RD))
        }
    }

    func stop() {
        let victims = state.withLock { s -> Set<Int32> in
            s.stopped = true
            return s.connections
        }
        shutdown(listener, Int32(SHUT_RDWR))
        for fd in victims { shutdown(fd, Int32(SHUT_RD)) }
    }

    deinit { close(listener) }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return  // stopped
            }
            let refuse = state.withLock { s -> Bool in
                if s.stopped || s.mode == .drop { return true }
                s.accepted += 1
                return false
            }
            if refuse { close(client); continue }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = loopbackAddress(port: upstreamPort)
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if rc != 0 { close(client); close(upstream); continue }
            state.withLock { $0.connections.formUnion([client, upstream]) }
            // Each direction on its own thread; the first to end wakes the other (shutting down
            // reading sends nothing), the second closes both sockets: a FIN, or a RST after `reset`.
            let ends = Atomic<Int>(0)
            let finish: @Sendable () -> Void = { [self] in
                shutdown(client, Int32(SHUT_RD))
                shutdown(upstream, Int32(SHUT_RD))
                if ends.add(1, ordering: .acquiringAndReleasing).newValue == 2 {
                    state.withLock { $0.connections.subtract([client, upstream]) }
                    close(client)
                    close(upstream)
                }
            }
            Thread { [self] in pump(from: client, to: upstream); finish() }.start()
            Thread { [self] in pump(from: upstream, to: client); finish() }.start()
        }
    }

    private func pump(from source: Int32, to destination: Int32) {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            if state.withLock({ $0.mode == .stall }) {
                usleep(5_000)
                // A stalled connection still notices being shut down (by drop, reset or stop).
                let readHangUp: Int16 = 0x2000  // POLLRDHUP (Linux; not exported without _GNU_SOURCE)
                var p = pollfd(fd: source, events: readHangUp, revents: 0)
                if poll(&p, 1, 0) > 0 && p.revents & (readHangUp | Int16(POLLHUP | POLLERR | POLLNVAL)) != 0 { return }
                continue
            }
            let n = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            var sent = 0
            while sent < n {
                let w = buffer.withUnsafeBytes { send(destination, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                if w < 0 && errno == EINTR { continue }
                if w <= 0 { return }
                sent += w
            }
        }
    }
}
