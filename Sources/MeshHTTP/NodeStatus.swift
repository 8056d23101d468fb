import MeshCore
import Synchronization

/// A listener as `/v1/status` shows it: what it speaks and the address it is bound to (the real
/// port when it was asked for port 0).
public struct ListenerInfo: Sendable, Equatable {
    /// `http`, `tcp`, …: also the key in the `listening` log line.
    public var name: String
    public var host: String
    public var port: Int

    public init(name: String, host: String, port: Int) {
        self.name = name
        self.host = host
        self.port = port
    }

    /// `host:port`, with an IPv6 host in brackets.
    public var address: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// What the admin endpoints report about the node. The composition root owns it and fills in
/// the listeners as they bind and the readiness as parts come up and go down; the HTTP server only
/// reads it. A mutex, not an actor: it is read by request handlers on event loops, which must not
/// suspend.
public final class NodeStatus: Sendable {
    public let node: String
    public let version: String
    public let startedAt: Timestamp
    private let startedUptime: ContinuousClock.Instant

    private struct State {
        var listeners: [ListenerInfo] = []
        var notReady: [String: String] = [:]
    }
    private let state = Mutex(State())

    public init(node: String, version: String) {
        self.node = node
        self.version = version
        startedAt = .now()
        startedUptime = .now
    }

    public var uptimeSeconds: Double {
        let d = ContinuousClock.now - startedUptime
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Adds or replaces (by name) a bound listener.
    public func setListener(_ info: ListenerInfo) {
        state.withLock { s in
            s.listeners.removeAll { $0.name == info.name }
            s.listeners.append(info)
            s.listeners.sort { $0.name < $1.name }
        }
    }

    public func removeListener(named name: String) {
        state.withLock { $0.listeners.removeAll { $0.name == name } }
    }

    public var listeners: [ListenerInfo] { state.withLock { $0.listeners } }

    /// Marks a part as not ready (with why) or, with nil, ready. `/readyz` answers 200 only when no
    /// part is marked.
    public func setNotReady(_ part: String, _ reason: String?) {
        state.withLock { s in s.notReady[part] = reason }
    }

    /// nil when ready; otherwise every reason, sorted by part.
    public var notReadyReason: String? {
        state.withLock { s in
            s.notReady.isEmpty ? nil : s.notReady.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
        }
    }
}
