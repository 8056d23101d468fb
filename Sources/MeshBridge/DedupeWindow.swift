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
        self = Self.canonicalULID(id).map { .ulid($0) } ?? .text(id)
    }

    var text: String {
        switch self {
        case .ulid(let id): id.description
        case .text(let id): id
        }
    }

    /// The id when `text` is exactly how `EventID.description` writes it.
    private static func canonicalULID(_ text: String) -> EventID? {
        guard text.utf8.count == 26, text.utf8.allSatisfy(isCanonicalDigit) else { return nil }
        return EventID(text)
    }

    /// 0-9 and A-Z without I, L, O and U: the digits `EventID.description` writes.
    private static func isCanonicalDigit(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A && b != 0x49 && b != 0x4C && b != 0x4F && b != 0x55)
    }
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
        var ids: Set<DedupeID> = []
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

    /// Records several ids of one origin with one lookup of the origin.
    mutating func insert(origin: String, ids: some Sequence<DedupeID>, at now: Int64) {
        var o = origins[origin] ?? Origin()
        origins[origin] = nil  // keep the value uniquely referenced while it changes
        for id in ids where o.ids.insert(id).inserted {
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
