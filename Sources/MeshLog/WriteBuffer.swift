/// A growable byte buffer the writer thread reuses for every batch, so encoding a batch
/// allocates nothing once the buffer has grown to the largest batch seen.
final class WriteBuffer {
    private(set) var base: UnsafeMutableRawPointer
    private(set) var capacity: Int
    private(set) var count = 0

    init(capacity: Int = 1 << 20) {
        self.capacity = capacity
        self.base = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    /// Returns a pointer to `n` writable bytes at the end and counts them as written.
    @inline(__always)
    func claim(_ n: Int) -> UnsafeMutableRawPointer {
        if count + n > capacity { grow(to: count + n) }
        let p = base + count
        count += n
        return p
    }

    func reset() { count = 0 }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    private func grow(to needed: Int) {
        var next = capacity * 2
        while next < needed { next *= 2 }
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: next, alignment: 16)
        fresh.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = fresh
        capacity = next
    }
}
