import MeshHTTP

/// A network listener the gateway runs: it binds on `start` (returning the address it got, the real
/// port for port 0) and, on `shutdown`, stops accepting, lets in-flight work finish and closes its
/// connections. The gateway runs each one as a `Service` after the log and stops it before the log.
///
/// Adding one (the TCP listener, say) is two steps in this target: conform it here, as
/// `extension TCPServer: Listener {}` (its `start` returning a `ListenerInfo` named `tcp`), and
/// append it in `Gateway.makeListeners`.
public protocol Listener: Sendable {
    /// The key of its address in the `listening` log line and in `/v1/status`.
    var name: String { get }
    func start() async throws -> ListenerInfo
    func shutdown() async
}

extension HTTPServer: Listener {
    public var name: String { "http" }
}
