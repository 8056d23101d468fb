import Foundation
import MeshCore
import MeshTestSupport
import Testing

@Suite struct NamedThreadTests {
    /// A thread carries its name by the time `startThread(named:)` returns: before, the log's
    /// retention thread was sometimes still anonymous when a test (or an operator) looked. Every CPU
    /// is kept busy meanwhile, so a new thread that named itself only once it ran would often not
    /// have run yet.
    @Test func aThreadIsNamedWhenItsStartReturns() {
        let busy = BusyCPUs()
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
        busy.stop()
        for _ in 0..<40 { release.signal() }
        finished.wait()
        #expect(missing.isEmpty, "threads still anonymous after their start returned: \(missing)")
    }
}
