import Logging
import MeshHTTP
import MeshNet
import MeshTCP
import NIOCore
import ServiceLifecycle

extension Gateway {
    /// TLS, connection limits and timeouts of the built-in listeners, from the configuration
    /// (docs/operations.md, "TLS" and "Limits"). `limiters` are the HTTP and the TCP one.
    static func configureConnections(http: inout HTTPServerConfiguration, tcp: inout TCPServer.Configuration, config: GatewayConfig,
                                     tls: ServerTLS?, limiters: [ConnectionLimiter]) {
        if let tls {
            if config.tlsListeners.contains("http") { http.connection.tls = tls }
            if config.tlsListeners.contains("tcp") { tcp.network.tls = tls }
        }
        if limiters.count == 2 {
            http.connection.limiter = limiters[0]
            tcp.network.limiter = limiters[1]
        }
        http.connection.idleTimeout = .milliseconds(Int64(config.idleTimeoutMilliseconds))
        http.connection.requestTimeout = .milliseconds(Int64(config.requestTimeoutMilliseconds))
        tcp.connection.maxFrameLength = UInt32(clamping: config.effectiveMaxFrameBytes)
    }
}

/// Reloads the listeners' certificate and key on SIGHUP (routes reload on the same signal). New
/// connections get the new files; open ones keep theirs. A bad file is logged and the old
/// certificate stays in use.
struct TLSReloadService: Service {
    let tls: ServerTLS
    let logger: Logger

    func run() async throws {
        let hangups = await Hangups.shared.subscribe()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in hangups {
                    do throws(TLSSetupError) {
                        try tls.reload()
                        logger.notice("SIGHUP: reloaded the TLS certificate \(tls.files.certificateChain)")
                    } catch {
                        logger.error("SIGHUP: TLS certificate not reloaded, the old one stays in use: \(error.message)")
                    }
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }
}
