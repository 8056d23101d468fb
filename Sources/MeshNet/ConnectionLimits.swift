import NIOCore
import Synchronization

/// Connection limits of one listener (docs/operations.md, "Limits").
public struct ConnectionLimits: Sendable, Equatable {
    /// Open connections the listener accepts at once; one more is refused.
    public var maxConnections: Int
    /// Open connections from one peer IP address at once.
    public var maxConnectionsPerPeer: Int

    public init(maxConnections: Int = 10_000, maxConnectionsPerPeer: Int = 1_000) {
        self.maxConnections = maxConnections
        self.maxConnectionsPerPeer = maxConnectionsPerPeer
    }
}

/// Why a listener refused or closed a connection, as the `reason` label of the metrics.
public enum ConnectionEvent: String, Sendable, CaseIterable {
    /// Refused: the listener had `maxConnections` open.
    case maxConnections = "max_connections"
    /// Refused: the peer's address had `maxConnectionsPerPeer` open.
    case maxConnectionsPerPeer = "max_connections_per_peer"
    /// Refused: the TLS handshake failed (no or untrusted client certificate, not TLS, old version).
    case tlsHandshake = "tls_handshake"
    /// Closed: idle between requests (HTTP keep-alive) for longer than the idle timeout.
    case idleTimeout = "idle_timeout"
    /// Closed with 408: a request's head and body did not arrive within the request timeout.
    case requestTimeout = "request_timeout"
    /// Closed with 431: a request head larger than the header limit.
    case headerBytes = "header_bytes"
    /// Closed with an ERROR frame: a TCP frame larger than the frame limit.
    case frameBytes = "frame_bytes"

    /// True for the refusals (counted in `meshgate_connections_refused_total`), false for the
    /// limits that close an accepted connection (`meshgate_connections_closed_total`).
    public var isRefusal: Bool {
        switch self {
        case .maxConnections, .maxConnectionsPerPeer, .tlsHandshake: true
        default: false
        }
    }
}

/// Counters of one listener, read at scrape time: open connections and every limit event.
public final class ListenerStats: Sendable {
    public let listener: String
    /// Limit events are rare (a refusal, a timeout): one lock is cheap enough.
    private let counts = Mutex<[ConnectionEvent: Int]>([:])

    public init(listener: String) {
        self.listener = listener
    }

    public func count(_ event: ConnectionEvent) {
        counts.withLock { $0[event, default: 0] += 1 }
    }

    public func value(_ event: ConnectionEvent) -> Int {
        counts.withLock { $0[event, default: 0] }
    }
}

/// Admits or refuses each new connection of a listener against its `ConnectionLimits`, and keeps
/// the counts that decide it: total and per peer IP address.
public final class ConnectionLimiter: Sendable {
    public let limits: ConnectionLimits
    public let stats: ListenerStats
    private struct State {
        var open = 0
        var perPeer: [String: Int] = [:]
    }
    private let state = Mutex(State())

    public init(listener: String, limits: ConnectionLimits) {
        self.limits = limits
        stats = ListenerStats(listener: listener)
    }

    /// Connections open right now.
    public var open: Int { state.withLock { $0.open } }

    /// A refusal with the sentence that explains it to the client.
    public struct Refusal: Sendable, Equatable {
        public let event: ConnectionEvent
        public let message: String
    }

    /// Counts `channel` in (and out again when it closes), or returns why it is refused (counted
    /// in the stats). Call once per accepted channel.
    public func admit(_ channel: any Channel) -> Refusal? {
        let peer = channel.remoteAddress?.ipAddress ?? "?"
        let limits = self.limits
        let refusal = state.withLock { s -> Refusal? in
            if s.open >= limits.maxConnections {
                return Refusal(event: .maxConnections,
                               message: "the listener has \(s.open) connections open, its limit (max_connections \(limits.maxConnections)); retry later")
            }
            let mine = s.perPeer[peer, default: 0]
            if mine >= limits.maxConnectionsPerPeer {
                return Refusal(event: .maxConnectionsPerPeer,
                               message: "\(peer) has \(mine) connections open, the limit per address (max_connections_per_peer \(limits.maxConnectionsPerPeer)); close one or retry later")
            }
            s.open += 1
            s.perPeer[peer] = mine + 1
            return nil
        }
        if let refusal {
            stats.count(refusal.event)
            return refusal
        }
        channel.closeFuture.whenComplete { [self] _ in
            state.withLock { s in
                s.open -= 1
                let left = s.perPeer[peer, default: 1] - 1
                s.perPeer[peer] = left > 0 ? left : nil
            }
        }
        return nil
    }
}
