import Synchronization
import UnixSignals

/// SIGHUP, trapped once per process and handed to every subscriber (route reload, TLS reload).
/// One dispatch signal source for the whole process rather than one per service: several
/// gateways in one process (tests, embedding) and several services per gateway all listen, and
/// registering many sources for one signal at once stalled libdispatch's event loop here.
final class Hangups: Sendable {
    static let shared = Hangups()

    private struct State {
        var trapping = false
        var next = 0
        var subscribers: [Int: AsyncStream<Void>.Continuation] = [:]
    }
    private let state = Mutex(State())

    /// A stream that yields once per SIGHUP from now on; it ends when the caller stops iterating.
    func subscribe() async -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let (id, first) = state.withLock { s -> (Int, Bool) in
            let id = s.next
            s.next += 1
            s.subscribers[id] = continuation
            defer { s.trapping = true }
            return (id, !s.trapping)
        }
        continuation.onTermination = { [self] _ in _ = state.withLock { $0.subscribers.removeValue(forKey: id) } }
        if first {
            let signals = await UnixSignalsSequence(trapping: .sighup)
            Task.detached { [self] in
                for await _ in signals {
                    for c in state.withLock({ Array($0.subscribers.values) }) { c.yield() }
                }
            }
        }
        return stream
    }
}
