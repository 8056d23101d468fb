import Logging
import MeshAuth
import ServiceLifecycle
import UnixSignals

/// Re-reads the `auth:` section of meshgate.yaml on SIGHUP (beside the route reload) and swaps
/// tokens, roles and the JWT key; the listeners then re-check their live connections. A section
/// that does not load is logged and the running one kept, like a bad route file.
struct AuthReloadService: Service {
    let access: AccessControl
    let configFile: String?
    let logger: Logger

    func run() async throws {
        guard access.enabled, let configFile else {
            try? await gracefulShutdown()
            return
        }
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in hangups { reload(configFile) }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    func reload(_ path: String) {
        do throws(ConfigError) {
            guard var auth = try AuthSection.load(path: path) else {
                logger.error("SIGHUP: \(path) has no auth: section any more; keeping the running one (authentication stays on)")
                return
            }
            auth.enabled = true
            do { try access.reload(auth) } catch { throw ConfigError("\(path): auth.jwt: \(error.message)") }
            logger.notice("SIGHUP: reloaded auth", metadata: ["tokens": "\(auth.tokens.count)", "roles": "\(auth.roles.count)",
                                                            "generation": "\(access.generation)"])
        } catch {
            logger.error("SIGHUP: auth reload failed; keeping the running one: \(error.message)")
        }
    }
}
