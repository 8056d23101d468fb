import ArgumentParser
import Dispatch
import Foundation
import Logging
import MeshLog

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway on its built-in log.")

    @Option(help: "Data directory of the built-in log (env MESHGATE_DATA).")
    var data: String = ProcessInfo.processInfo.environment["MESHGATE_DATA"] ?? "./data"

    @Option(help: "Routes directory (env MESHGATE_ROUTES).")
    var routes: String = ProcessInfo.processInfo.environment["MESHGATE_ROUTES"] ?? "./routes"

    @Option(help: "Node (site) name (env MESHGATE_NODE).")
    var node: String = ProcessInfo.processInfo.environment["MESHGATE_NODE"] ?? "meshgate"

    func run() async throws {
        bootstrapLogging()
        let logger = Logger(label: "meshgate")
        let log: DurableLog
        do {
            log = try DurableLog(directory: data, logger: Logger(label: "meshgate.log"))
        } catch {
            logger.critical("cannot open the log: \(error)")
            throw ExitCode(1)
        }
        logger.info("meshgate \(meshgateVersion) serving", metadata: ["node": "\(node)", "data": "\(data)", "topics": "\(log.topics.count)"])
        let routing = await startRouting(log: log, routes: routes, logger: logger)
        await waitForTermination()
        await routing?.stop()
        logger.info("shutting down: flushing the log")
        log.close()
    }
}

/// Suspends until SIGINT or SIGTERM arrives.
func waitForTermination() async {
    await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
        let once = OnceFlag()
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { if once.set() { cont.resume() } }
            source.resume()
            retainedSignalSources.append(source)
        }
    }
}

nonisolated(unsafe) private var retainedSignalSources: [DispatchSourceSignal] = []

final class OnceFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    func set() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if done { return false }
        done = true
        return true
    }
}
