#if canImport(Glibc)
import Glibc
#endif
import CMeshSupport
import MeshCore

/// An event id as the dedupe window keeps it. meshgate's own ids (26 characters of Crockford
/// base32 in their canonical upper-case form) are kept as their 128 bits, which hash and compare
/// as two words instead of a heap string; any other id is kept as it is. Only the canonical form
/// maps to `.ulid`, so two ids that differ as strings never share a key.
enum DedupeID: Hashable, Sendable {
    case ulid(EventID)
    case text(String)

    /// A meshgate id's low 64 bits are random: they alone are a good hash.
    func hash(into hasher: inout Hasher) {
        switch self {
        case .ulid(let id): hasher.combine(id.low)
        case .text(let id): hasher.combine(id)
        }
    }

    init(_ id: String) {
        var id = id
        let parsed = id.withUTF8 { EventID(canonical: UnsafeRawBufferPointer($0)) }
        self = parsed.map { .ulid($0) } ?? .text(id)
    }

    var text: String {
        switch self {
        case .ulid(let id): id.description
        case .text(let id): id
        }
    }
}

/// A set of dedupe ids. meshgate's own ids go in a table of their 128 bits with open addressing
/// (linear probing, backward-shift removal, at most half full), other ids in a `Set<String>`.
/// Every event a bridge receives costs a few lookups here, and a window holds up to 500,000 ids
/// per origin: `Set<DedupeID>` spent more on SipHash and on its larger buckets than on anything
/// else the receiving site did per event (docs/bench/profile.md, "Cross-site forwarding").
///
/// Consecutive ids of one millisecond differ by one in their low bits, so the slot comes from a
/// multiplicative hash of both words, seeded per process so a peer cannot aim ids at one slot.
struct DedupeIDSet: Sendable {
    /// Nil until the first meshgate id; shared between copies until one of them changes.
    private var table: SlotTable?
    private var hasZero = false
    private var texts: Set<String> = []
    /// meshgate ids in `table` (not counting the all-zero one, which marks empty slots).
    private var used = 0

    private static let empty = EventID(high: 0, low: 0)
    private static let seed = UInt64.random(in: .min ... .max)

    init() {}

    var count: Int { used + (hasZero ? 1 : 0) + texts.count }
    /// Which table holds the ids: the same one after a change unless a copy shared it.
    var tableIdentity: ObjectIdentifier? { table.map(ObjectIdentifier.init) }

    /// The slot a probe for `id` starts at, in a table of 2^(64 - shift) slots.
    private static func home(_ id: EventID, shift: Int) -> Int {
        let mixed = (id.low ^ seed) &+ id.high &* 0xC2B2_AE3D_27D4_EB4F
        return Int(truncatingIfNeeded: (mixed &* 0x9E37_79B9_7F4A_7C15) >> UInt64(shift))
    }

    /// The slot holding `id`, or the empty slot where it would go.
    private static func find(_ id: EventID, in table: SlotTable) -> (slot: Int, found: Bool) {
        let slots = table.slots, mask = table.capacity - 1
        var i = home(id, shift: table.shift)
        while true {
            let here = slots[i]
            if here == id { return (i, true) }
            if here == empty { return (i, false) }
            i = (i + 1) & mask
        }
    }

    /// Starts loading the slot a lookup of `id` begins at (`mesh_prefetch`), so that a batch's
    /// lookups, prefetched first, wait for their cache misses together rather than in turn.
    func prefetch(_ id: DedupeID) {
        guard case .ulid(let id) = id, let table else { return }
        mesh_prefetch(table.slots + Self.home(id, shift: table.shift))
    }

    func contains(_ id: DedupeID) -> Bool {
        switch id {
        case .text(let text): return texts.contains(text)
        case .ulid(let id):
            if id == Self.empty { return hasZero }
            guard let table, used > 0 else { return false }
            return Self.find(id, in: table).found
        }
    }

    /// True when `id` was not in the set.
    @discardableResult
    mutating func insert(_ id: DedupeID) -> Bool {
        switch id {
        case .text(let text): return texts.insert(text).inserted
        case .ulid(let id):
            if id == Self.empty { defer { hasZero = true }; return !hasZero }
            var probe = table.map { Self.find(id, in: $0) }
            if probe?.found == true { return false }
            // A copy (`makeUnique`) keeps every slot where it was; a bigger table does not.
            if (used + 1) * 2 > (table?.capacity ?? 0) { grow(); probe = nil } else { makeUnique() }
            let table = table!
            table.slots[probe?.slot ?? Self.find(id, in: table).slot] = id
            used += 1
            return true
        }
    }

    mutating func remove(_ id: DedupeID) {
        switch id {
        case .text(let text): texts.remove(text)
        case .ulid(let id):
            if id == Self.empty { hasZero = false; return }
            // No reference to the table may outlive this lookup: `makeUnique` would see it shared.
            guard used > 0 else { return }
            let (slot, found) = Self.find(id, in: table!)
            guard found else { return }
            makeUnique()  // a copy keeps every slot where it was
            let table = table!
            var gap = slot
            used -= 1
            // Backward shift: later entries of the probe run that may move up fill the gap, so a
            // lookup never stops early at a hole.
            let slots = table.slots, mask = table.capacity - 1
            var j = gap
            while true {
                j = (j + 1) & mask
                let here = slots[j]
                if here == Self.empty { break }
                if Self.stays(home: Self.home(here, shift: table.shift), gap: gap, at: j) { continue }
                slots[gap] = here
                gap = j
            }
            slots[gap] = Self.empty
        }
    }

    /// Whether the entry at slot `j`, whose probe starts at `home`, stays put when slot `gap`
    /// (before `j` in the same probe run, maybe across the table's end) empties: when its home
    /// lies cyclically in (gap, j], moving it to `gap` would put it before its home.
    static func stays(home: Int, gap: Int, at j: Int) -> Bool {
        gap <= j ? (gap < home && home <= j) : (gap < home || home <= j)
    }

    /// A table of its own before a change, when a copy of the set shares it (a checkpoint's).
    private mutating func makeUnique() {
        if table != nil, !isKnownUniquelyReferenced(&table!) { table = table!.copy() }
    }

    private mutating func grow() {
        let bigger = SlotTable(capacity: max(16, (table?.capacity ?? 0) * 2))
        if let old = table {
            for i in 0..<old.capacity where old.slots[i] != Self.empty {
                bigger.slots[Self.find(old.slots[i], in: bigger).slot] = old.slots[i]
            }
        }
        table = bigger
    }
}

/// The slots of a `DedupeIDSet`. A table of 2 MiB or more is laid on huge pages
/// (`madvise(MADV_HUGEPAGE)`): its lookups land anywhere in it, and with 4 KiB pages each one
/// cost a page walk on top of the cache miss — in a virtual machine a walk of both the guest's
/// and the host's tables.
final class SlotTable: @unchecked Sendable {
    let capacity: Int
    /// Right shift of a 64-bit hash that leaves a slot index.
    let shift: Int
    let slots: UnsafeMutablePointer<EventID>

    init(capacity: Int) {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0, "a power of two")
        self.capacity = capacity
        shift = 64 - capacity.trailingZeroBitCount
        let bytes = capacity * MemoryLayout<EventID>.stride
        let hugePage = 2 << 20
        var memory: UnsafeMutableRawPointer?
        if bytes >= hugePage, posix_memalign(&memory, hugePage, bytes) == 0, let memory {
            _ = madvise(memory, bytes, Int32(MADV_HUGEPAGE))
        } else {
            memory = malloc(bytes)
        }
        guard let memory else { fatalError("cannot allocate \(bytes) bytes for a dedupe table") }
        slots = memory.bindMemory(to: EventID.self, capacity: capacity)
        slots.initialize(repeating: EventID(high: 0, low: 0), count: capacity)
    }

    func copy() -> SlotTable {
        let twin = SlotTable(capacity: capacity)
        twin.slots.update(from: slots, count: capacity)
        return twin
    }

    deinit { free(slots) }
}

/// The ids this site holds per origin site, recent first out: bounded by a count per origin and
/// by age. Not thread-safe; `BridgeIngressService` guards it.
struct DedupeWindow: Sendable {
    struct Limits: Sendable {
        /// Ids remembered per origin site.
        var perOrigin: Int = 500_000
        /// Ids older than this (by when they were recorded) are forgotten; microseconds.
        var maxAgeMicros: Int64 = 24 * 3600 * 1_000_000
    }

    struct Origin: Sendable {
        var ids = DedupeIDSet()
        /// Insertion order, for eviction: (id, recorded at µs). `head` is the oldest live entry.
        var order: [(id: DedupeID, at: Int64)] = []
        var head = 0

        mutating func compact() {
            if head > 4096 && head * 2 > order.count {
                order.removeFirst(head)
                head = 0
            }
        }
    }

    var limits: Limits
    private(set) var origins: [String: Origin] = [:]

    init(limits: Limits = Limits()) { self.limits = limits }

    func contains(origin: String, id: DedupeID) -> Bool {
        origins[origin]?.ids.contains(id) ?? false
    }

    func contains(origin: String, id: String) -> Bool {
        contains(origin: origin, id: DedupeID(id))
    }

    var count: Int { origins.values.reduce(0) { $0 + $1.ids.count } }

    mutating func insert(origin: String, id: String, at now: Int64) {
        insert(origin: origin, id: DedupeID(id), at: now)
    }

    mutating func insert(origin: String, id: DedupeID, at now: Int64) {
        insert(origin: origin, ids: CollectionOfOne(id), at: now)
    }

    /// The ids held for `origin`, for a batch's checks with one lookup of the origin. The set
    /// shares the window's table until either changes: drop it before inserting.
    func ids(of origin: String) -> DedupeIDSet? {
        origins[origin]?.ids
    }

    /// Records several ids of one origin with one lookup of the origin.
    mutating func insert(origin: String, ids: some Collection<DedupeID>, at now: Int64) {
        var o = origins[origin] ?? Origin()
        origins[origin] = nil  // keep the value uniquely referenced while it changes
        // The slots these ids go to and those of the ids they push out, loaded together first.
        for id in ids { o.ids.prefetch(id) }
        let evicted = min(o.order.count - o.head, max(0, o.ids.count + ids.count - limits.perOrigin))
        for e in o.order[o.head..<(o.head + evicted)] { o.ids.prefetch(e.id) }
        for id in ids where o.ids.insert(id) {
            o.order.append((id, now))
        }
        while o.ids.count > limits.perOrigin || (o.head < o.order.count && now - o.order[o.head].at > limits.maxAgeMicros) {
            o.ids.remove(o.order[o.head].id)
            o.head += 1
        }
        o.compact()
        origins[origin] = o
    }

    /// Every live entry, oldest first per origin.
    var entries: [(origin: String, ids: ArraySlice<(id: DedupeID, at: Int64)>)] {
        origins.sorted { $0.key < $1.key }.map { ($0.key, $0.value.order[$0.value.head...]) }
    }
}

/// The checkpoint file `<data>/bridge/dedupe.ckpt`: the window plus, per topic-partition, the log
/// position up to which every bridged event is in it. Written whole to a temporary file, fsynced
/// and renamed over the old one, so a reader sees the old or the new checkpoint, never a mix.
///
///     "MGDD" version(u8=1)
///     positions: u32 count, then (string topic, u32 partition, i64 offset)…
///     origins:   u32 count, then (string origin, u32 count, then (string id, i64 recorded µs)…)…
///     u32 FNV-1a of everything before it
///
/// Integers little-endian; strings a u32 length then UTF-8.
enum DedupeCheckpoint {
    struct Position: Hashable, Sendable {
        let topic: String
        let partition: Int
    }

    static func encode(positions: [Position: Int64], window: DedupeWindow) -> [UInt8] {
        var out: [UInt8] = Array("MGDD".utf8) + [1]
        func u32(_ v: Int) { withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian) { out.append(contentsOf: $0) } }
        func i64(_ v: Int64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func string(_ s: String) { u32(s.utf8.count); out.append(contentsOf: s.utf8) }
        u32(positions.count)
        for (p, offset) in positions.sorted(by: { ($0.key.topic, $0.key.partition) < ($1.key.topic, $1.key.partition) }) {
            string(p.topic); u32(p.partition); i64(offset)
        }
        let entries = window.entries
        u32(entries.count)
        for (origin, ids) in entries {
            string(origin); u32(ids.count)
            for e in ids { string(e.id.text); i64(e.at) }
        }
        u32(Int(fnv(out[...])))
        return out
    }

    static func decode(_ bytes: [UInt8], limits: DedupeWindow.Limits) -> (positions: [Position: Int64], window: DedupeWindow)? {
        guard bytes.count >= 13, bytes.starts(with: Array("MGDD".utf8)), bytes[4] == 1 else { return nil }
        let body = bytes[..<(bytes.count - 4)]
        var pos = 5
        func u32() -> Int? {
            guard pos + 4 <= body.count else { return nil }
            var v: UInt32 = 0
            for i in 0..<4 { v |= UInt32(body[pos + i]) << (8 * UInt32(i)) }
            pos += 4
            return Int(v)
        }
        func i64() -> Int64? {
            guard pos + 8 <= body.count else { return nil }
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(body[pos + i]) << (8 * UInt64(i)) }
            pos += 8
            return Int64(bitPattern: v)
        }
        func string() -> String? {
            guard let n = u32(), pos + n <= body.count else { return nil }
            defer { pos += n }
            return String(decoding: body[pos..<(pos + n)], as: UTF8.self)
        }
        var check: UInt32 = 0
        for i in 0..<4 { check |= UInt32(bytes[bytes.count - 4 + i]) << (8 * UInt32(i)) }
        guard check == fnv(body) else { return nil }
        var positions: [Position: Int64] = [:]
        guard let n = u32() else { return nil }
        for _ in 0..<n {
            guard let t = string(), let p = u32(), let o = i64() else { return nil }
            positions[Position(topic: t, partition: p)] = o
        }
        var window = DedupeWindow(limits: limits)
        guard let origins = u32() else { return nil }
        for _ in 0..<origins {
            guard let origin = string(), let count = u32() else { return nil }
            for _ in 0..<count {
                guard let id = string(), let at = i64() else { return nil }
                window.insert(origin: origin, id: id, at: at)
            }
        }
        guard pos == body.count else { return nil }
        return (positions, window)
    }

    static func fnv(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var h: UInt32 = 2_166_136_261
        for b in bytes { h = (h ^ UInt32(b)) &* 16_777_619 }
        return h
    }
}
