import MeshTestSupport
import Testing
@testable import MeshCore

@Suite struct TimestampTests {
    @Test(arguments: [
        ("1970-01-01T00:00:00Z", Int64(0)),
        ("2024-02-29T12:34:56Z", Int64(1_709_210_096_000_000)),
        ("2024-02-29T12:34:56.5Z", Int64(1_709_210_096_500_000)),
        ("2024-02-29T12:34:56.123456789Z", Int64(1_709_210_096_123_456)),
        ("2024-02-29T14:34:56+02:00", Int64(1_709_210_096_000_000)),
        ("2024-02-29T07:04:56.000001-05:30", Int64(1_709_210_096_000_001)),
        ("2024-02-29t12:34:56z", Int64(1_709_210_096_000_000)),
        ("2024-02-29 12:34:56Z", Int64(1_709_210_096_000_000)),
        ("1969-12-31T23:59:59.999999Z", Int64(-1)),
        ("0000-01-01T00:00:00Z", Int64(-62_167_219_200_000_000)),
        ("9999-12-31T23:59:59.999999Z", Int64(253_402_300_799_999_999)),
        ("2016-12-31T23:59:60Z", Int64(1_483_228_799_999_999)),
    ])
    func parses(_ text: String, _ micros: Int64) throws {
        #expect(try Timestamp(rfc3339: text).microsecondsSinceEpoch == micros)
    }

    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00Z"),
        (Int64(1_709_210_096_500_000), "2024-02-29T12:34:56.500Z"),
        (Int64(1_709_210_096_123_456), "2024-02-29T12:34:56.123456Z"),
        (Int64(-1), "1969-12-31T23:59:59.999999Z"),
        (Int64(951_782_400_000_000), "2000-02-29T00:00:00Z"),
    ])
    func formats(_ micros: Int64, _ text: String) {
        #expect(Timestamp(microsecondsSinceEpoch: micros).rfc3339 == text)
    }

    @Test func roundTripsRandomInstants() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRandom(seed: seed)
        for _ in 0..<20_000 {
            let micros = Int64.random(in: Timestamp.rfc3339Range, using: &rng)
            let t = Timestamp(microsecondsSinceEpoch: micros)
            let parsed = try Timestamp(rfc3339: t.rfc3339)
            #expect(parsed == t, "seed \(seed): \(micros) -> \(t.rfc3339)")
            if parsed != t { break }
        }
    }

    @Test func millisecondsFloorTowardsThePast() {
        #expect(Timestamp(microsecondsSinceEpoch: -1).millisecondsSinceEpoch == -1)
        #expect(Timestamp(microsecondsSinceEpoch: 1999).millisecondsSinceEpoch == 1)
        #expect(Timestamp(millisecondsSinceEpoch: 5).microsecondsSinceEpoch == 5000)
    }

    @Test func nowIsRecent() {
        // 2024-01-01 .. 2200-01-01: catches unit mistakes (seconds vs micros), not clock skew.
        let now = Timestamp.now().microsecondsSinceEpoch
        #expect(now > 1_704_067_200_000_000 && now < 7_258_118_400_000_000)
    }

    @Test(arguments: [
        ("2024-02-30T00:00:00Z", 8), ("2023-02-29T00:00:00Z", 8), ("2024-13-01T00:00:00Z", 5),
        ("2024-01-01T24:00:00Z", 11), ("2024-01-01T00:60:00Z", 14), ("2024-01-01T00:00:61Z", 17),
        ("2024-01-01T00:00:00", 19), ("2024-01-01T00:00:00.Z", 20), ("2024-01-01T00:00:00+0200", 20),
        ("2024-01-01T00:00:00Zjunk", 20), ("2024-1-01T00:00:00Z", 5), ("", 0), ("2024-01-01X00:00:00Z", 10),
    ])
    func rejects(_ text: String, _ byte: Int) {
        #expect {
            try Timestamp(rfc3339: text)
        } throws: { error in
            guard let error = error as? TimestampError else { return false }
            #expect(error.byteOffset == byte)
            #expect(error.code == "time.invalid")
            return true
        }
    }
}
