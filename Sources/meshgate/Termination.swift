import Dispatch
import Foundation
import Synchronization

/// Suspends until SIGINT or SIGTERM arrives (for the hidden test tools; `serve` uses the service
/// group's graceful shutdown).
func waitForTermination() async {
    await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
        let once = OnceFlag()
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { if once.claim() { cont.resume() } }
            source.resume()
            retainedSignalSources.append(source)
        }
    }
}

// Touched only while setting up, before any signal can arrive; kept so the sources stay alive.
nonisolated(unsafe) private var retainedSignalSources: [any DispatchSourceSignal] = []

final class OnceFlag: Sendable {
    private let done = Atomic<Bool>(false)
    func claim() -> Bool { !done.exchange(true, ordering: .acquiringAndReleasing) }
}
