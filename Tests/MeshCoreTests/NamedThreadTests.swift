import Foundation
import MeshCore
import MeshTestSupport
import Synchronization
import Testing

@Suite struct NamedThreadTests {
    /// A thread carries its name by the time `startThread(named:)` returns: before, the log's
    /// retention thread was sometimes still anonymous when a test (or an operator) looked. Two
    /// threads keep every CPU busy meanwhile, so a new thread that named itself only once it ran
    /// would often not have run yet.
    @Test func aThreadIsNamedWhenItsStartReturns() {
        let spinning = Atomic<Bool>(true)
        let spinners = DispatchGroup()
        for _ in 0..<ProcessInfo.processInfo.activeProcessorCount {
            spinners.enter()
            Thread {
                while spinning.load(ordering: .relaxed) {}
                spinners.leave()
            }.start()
        }
        let release = DispatchSemaphore(value: 0)
        let finished = DispatchGroup()
        var missing: [String] = []
        for i in 0..<40 {
            let name = "mg-named-\(i)"
            finished.enter()
            startThread(named: name) {
                release.wait()
                finished.leave()
            }
            if !threadNames().contains(name) { missing.append(name) }
        }
        spinning.store(false, ordering: .relaxed)
        spinners.wait()
        for _ in 0..<40 { release.signal() }
        finished.wait()
        #expect(missing.isEmpty, "threads still anonymous after their start returned: \(missing)")
    }
}
