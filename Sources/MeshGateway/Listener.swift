import MeshHTTP
import MeshTCP

/// A network listener the gateway runs: it binds on `start` (returning the address it got, the real
/// port for port 0) and, on `shutdown`, stops accepting, lets in-flight work finish and closes its
/// connections. The gateway runs each one as a `Service` after the log and stops it before the log.
///
/// Adding one is two steps in this target: conform it here and append it in
/// `Gateway.makeListeners`.
public protocol Listener: Sendable {
    /// The key of its address in the `listening` log line and in `/v1/status`.
    var name: String { get }
    func start() async throws -> ListenerInfo
    func shutdown() async
}

extension HTTPServer: Listener {
    public var name: String { "http" }
}

/// The TCP listener at the configured address.
struct TCPListener: Listener {
    let server: TCPServer
    let host: String
    let port: Int

    var name: String { "tcp" }

    func start() async throws -> ListenerInfo {
        let bound = try await server.start(host: host, port: port)
        return ListenerInfo(name: name, host: host, port: bound)
    }

    func shutdown() async {
        await server.shutdown()
    }
}
