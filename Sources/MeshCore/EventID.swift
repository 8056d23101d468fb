import Synchronization

/// A 128-bit, time-ordered event id: 48 bits of Unix milliseconds, then 80 bits that are random for
/// the first id of a millisecond and counted up from there, so ids one generator hands out are
/// strictly increasing even within a millisecond. Spelled as 26 Crockford base32 characters (the
/// ULID layout), which sort the same way as the values.
public struct EventID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Top 64 bits: 48 bits of milliseconds, then the top 16 bits of the 80-bit tail.
    public let high: UInt64
    /// Low 64 bits of the 80-bit tail.
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public init(milliseconds: UInt64, tailHigh: UInt16, tailLow: UInt64) {
        self.high = (milliseconds & 0xFFFF_FFFF_FFFF) << 16 | UInt64(tailHigh)
        self.low = tailLow
    }

    /// Milliseconds since the Unix epoch at which the id was made.
    public var milliseconds: UInt64 { high >> 16 }

    public static func < (lhs: EventID, rhs: EventID) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }

    private static let alphabet: [UInt8] = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// 26 characters; the first carries the top 3 bits of the 130 spelled, the top 2 being zero.
    public var description: String {
        String(unsafeUninitializedCapacity: 26) { out in
            Self.alphabet.withUnsafeBufferPointer { alphabet in
                // Character k (from the right) holds bits 5k..5k+4 of the 128-bit value.
                for k in 0..<26 {
                    let shift = 5 * k
                    let bits: UInt64
                    if shift >= 64 {
                        bits = high >> (shift - 64)
                    } else if shift > 59 {
                        bits = low >> shift | high << (64 - shift)
                    } else {
                        bits = low >> shift
                    }
                    out[25 - k] = alphabet[Int(bits & 31)]
                }
            }
            return 26
        }
    }

    /// Parses the 26-character form, case-insensitively, reading `I`/`L` as 1 and `O` as 0 as Crockford
    /// base32 allows. Nil for anything else.
    public init?(_ text: String) {
        var high: UInt64 = 0
        var low: UInt64 = 0
        var count = 0
        for byte in text.utf8 {
            count += 1
            guard count <= 26, let value = Self.decode(byte) else { return nil }
            if count == 1, value > 7 { return nil }
            high = high << 5 | low >> 59
            low = low << 5 | UInt64(value)
        }
        guard count == 26 else { return nil }
        self.init(high: high, low: low)
    }

    /// Parses exactly the form `description` writes (26 upper-case digits of the alphabet, the
    /// first at most 7): nil for anything else, including the lower-case and `I`/`L`/`O` spellings
    /// `init?(_:)` accepts. One pass through a table, for the bridge's dedupe keys.
    public init?(canonical utf8: UnsafeRawBufferPointer) {
        guard utf8.count == 26 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        // The first digit carries the top 3 of the 130 bits spelled: 0...7.
        var invalid: UInt8 = Self.canonicalValues[Int(utf8[0])] & 0xF8
        Self.canonicalValues.withUnsafeBufferPointer { values in
            for i in 0..<26 {
                let value = values[Int(utf8[i])]
                invalid |= value & 0x80
                high = high << 5 | low >> 59
                low = low << 5 | UInt64(value & 31)
            }
        }
        guard invalid == 0 else { return nil }
        self.init(high: high, low: low)
    }

    /// Each byte's digit value in the canonical alphabet, 0x80 for bytes outside it.
    private static let canonicalValues: [UInt8] = {
        var table = [UInt8](repeating: 0x80, count: 256)
        for (value, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(value) }
        return table
    }()

    private static func decode(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return decode(byte - 32)
        case UInt8(ascii: "O"): return 0
        case UInt8(ascii: "I"), UInt8(ascii: "L"): return 1
        case UInt8(ascii: "U"): return nil
        case UInt8(ascii: "A")...UInt8(ascii: "Z"):
            var value = byte - UInt8(ascii: "A") + 10
            if byte > UInt8(ascii: "I") { value -= 1 }
            if byte > UInt8(ascii: "L") { value -= 1 }
            if byte > UInt8(ascii: "O") { value -= 1 }
            if byte > UInt8(ascii: "U") { value -= 1 }
            return value
        default: return nil
        }
    }

    /// The next id from the process-wide generator.
    public static func next() -> EventID { EventIDGenerator.shared.next() }
}

/// Hands out strictly increasing `EventID`s from any thread.
///
/// A `Mutex` rather than an actor: the critical section is a few arithmetic instructions on the
/// publish path, and callers must not suspend to get an id.
public final class EventIDGenerator: Sendable {
    public static let shared = EventIDGenerator()

    private struct State {
        var last = EventID(high: 0, low: 0)
    }

    private let state = Mutex(State())

    public init() {}

    public func next() -> EventID {
        next(milliseconds: UInt64(max(0, Timestamp.now().millisecondsSinceEpoch)))
    }

    /// The next id at a given clock reading: a fresh random tail when the clock moved past the last
    /// id's millisecond, otherwise the last id plus one (so a clock stepping back never reorders).
    public func next(milliseconds now: UInt64) -> EventID {
        state.withLock { state in
            let last = state.last
            let id: EventID
            if (now & 0xFFFF_FFFF_FFFF) > last.milliseconds {
                // Fresh randomness once per millisecond only: it is a system call, and within a
                // millisecond the counter alone keeps ids unique and ordered.
                var rng = SystemRandomNumberGenerator()
                let tail = rng.next()
                // Keep the top tail bit clear so a millisecond has 2^79 increments of headroom.
                id = EventID(milliseconds: now, tailHigh: UInt16(truncatingIfNeeded: tail >> 49), tailLow: rng.next())
            } else {
                let (low, carry) = last.low.addingReportingOverflow(1)
                // A carry out of the 80-bit tail moves into the millisecond bits: still increasing.
                id = EventID(high: carry ? last.high &+ 1 : last.high, low: low)
            }
            state.last = id
            return id
        }
    }
}
