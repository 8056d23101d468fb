import MeshCore
import MeshRouting
import Synchronization

/// Batch mode: deliveries that arrive together (the engine runs up to `in_flight` per partition
/// at once) are posted as one `application/cloudevents-batch+json` request. A batch goes when it
/// holds `size` events or `linger` after its first event; every delivery in it then succeeds or
/// fails with the request, so the route's policy retries or dead-letters each event as usual.
final class WebhookBatcher: Sendable {
    typealias Send = @Sendable ([Event]) async -> DeliveryError?
    private struct Pending {
        var events: [Event] = []
        var waiters: [CheckedContinuation<DeliveryError?, Never>] = []
        var generation = 0
    }
    private let pending = Mutex(Pending())
    let size: Int
    let linger: Duration

    init(size: Int, linger: Duration) {
        self.size = size
        self.linger = linger
    }

    /// Adds `event` to the open batch and waits for that batch's outcome (nil: delivered).
    func submit(_ event: Event, send: @escaping Send) async -> DeliveryError? {
        await withCheckedContinuation { (c: CheckedContinuation<DeliveryError?, Never>) in
            let (full, startTimer, generation) = pending.withLock { p -> (Pending?, Bool, Int) in
                p.events.append(event)
                p.waiters.append(c)
                if p.events.count >= size || linger == .zero {
                    let batch = p
                    p = Pending(generation: p.generation + 1)
                    return (batch, false, 0)
                }
                return (nil, p.events.count == 1, p.generation)
            }
            if let full {
                Task { await Self.flush(full, send) }
            } else if startTimer {
                let linger = linger
                Task { [self] in
                    try? await Task.sleep(for: linger)
                    let batch = pending.withLock { p -> Pending? in
                        guard p.generation == generation, !p.events.isEmpty else { return nil }
                        let batch = p
                        p = Pending(generation: p.generation + 1)
                        return batch
                    }
                    if let batch { await Self.flush(batch, send) }
                }
            }
        }
    }

    private static func flush(_ batch: Pending, _ send: Send) async {
        let error = await send(batch.events)
        for w in batch.waiters { w.resume(returning: error) }
    }

    /// The `webhook-id` of a batch: derived from its event ids, so a batch retried with the same
    /// events keeps its id (receivers de-duplicate on it).
    static func messageID(_ events: [Event]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a 64
        for e in events {
            for b in e.id.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            h = (h ^ 0xFF) &* 0x100_0000_01b3
        }
        return "batch_\(events.count)_" + String(h, radix: 16)
    }
}
