import Dispatch
import Foundation
import Logging
import MeshConfig
import MeshLog
import MeshRouting

/// Starts routing for `meshgate serve`: loads the routes directory (when it exists), watches it,
/// and reloads on SIGHUP. A bad table at start-up is reported and leaves routing empty (the
/// gateway still serves; `/readyz` can use `status.loaded`); fixing the files loads it.
func startRouting(log: DurableLog, routes: String, logger: Logger) async -> RouteManager? {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: routes, isDirectory: &isDir), isDir.boolValue else {
        logger.info("no routes directory at \(routes); routing is off")
        return nil
    }
    let manager = RouteManager(path: routes, engine: RouteEngine(log: log, logger: Logger(label: "meshgate.routing")),
                               logger: Logger(label: "meshgate.routes"))
    await manager.reload()
    manager.watch()
    signal(SIGHUP, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
    source.setEventHandler {
        logger.info("SIGHUP: reloading routes")
        Task { await manager.reload() }
    }
    source.resume()
    retainedRouteSignalSources.append(source)
    return manager
}

nonisolated(unsafe) private var retainedRouteSignalSources: [DispatchSourceSignal] = []
