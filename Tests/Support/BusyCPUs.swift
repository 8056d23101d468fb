import Foundation
import Synchronization

/// One spinning thread per CPU until `stop()`: a thread that has just been woken or started then
/// waits for a time slice instead of running at once, which opens the races a test means to rule
/// out (a thread seen before it named itself, a message that arrives before its route).
public final class BusyCPUs: Sendable {
    private let spinning = Atomic<Bool>(true)
    private let spinners = DispatchGroup()

    public init() {
        for _ in 0..<ProcessInfo.processInfo.activeProcessorCount {
            spinners.enter()
            Thread { [self] in
                while spinning.load(ordering: .relaxed) {}
                spinners.leave()
            }.start()
        }
    }

    /// Ends the spinning and waits for every spinner to finish.
    public func stop() {
        spinning.store(false, ordering: .relaxed)
        spinners.wait()
    }
}
