import Logging
import MeshBridge
import MeshHTTP
import MeshLog
import ServiceLifecycle

/// The built-in log as a service: open from the gateway's start, flushed and closed once every
/// service after it (the listeners) has stopped.
struct LogService: Service {
    let log: DurableLog
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        logger.info("flushing and closing the log")
        log.close()
    }
}

/// A listener as a service: starts it, publishes its address, and on graceful shutdown stops
/// accepting and drains it.
struct ListenerService: Service {
    let listener: any Listener
    let status: NodeStatus
    let logger: Logger

    func run() async throws {
        let info = try await listener.start()
        status.setListener(info)
        status.setNotReady("listener \(listener.name)", nil)
        logger.notice("listening \(info.name)=\(info.address)")
        try? await gracefulShutdown()
        status.setNotReady("listener \(listener.name)", "stopping")
        logger.info("stopping \(listener.name) listener: draining in-flight requests")
        await listener.shutdown()
        status.removeListener(named: listener.name)
    }
}

/// The bridge dedupe checkpoint as a service: rewritten every few seconds while running, and once
/// more after the listeners have stopped (it stops after them, before the log closes).
struct BridgeIngressCheckpoints: Service {
    let ingress: BridgeIngressService

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await ingress.run() }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }
}
