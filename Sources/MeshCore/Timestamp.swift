#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A point in time as microseconds since the Unix epoch (UTC), the resolution events carry.
/// Formatting and parsing of RFC 3339 are done here without Foundation: they sit on the ingest path.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var microsecondsSinceEpoch: Int64

    public init(microsecondsSinceEpoch: Int64) {
        self.microsecondsSinceEpoch = microsecondsSinceEpoch
    }

    public init(millisecondsSinceEpoch: Int64) {
        self.microsecondsSinceEpoch = millisecondsSinceEpoch &* 1000
    }

    public static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(microsecondsSinceEpoch: Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000)
    }

    public var millisecondsSinceEpoch: Int64 {
        microsecondsSinceEpoch >= 0 ? microsecondsSinceEpoch / 1000 : (microsecondsSinceEpoch - 999) / 1000
    }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.microsecondsSinceEpoch < rhs.microsecondsSinceEpoch
    }

    public var description: String { rfc3339 }

    /// The earliest and latest instants RFC 3339 can spell (years 0000 and 9999, UTC).
    public static let rfc3339Range: ClosedRange<Int64> =
        (-62_167_219_200 * 1_000_000)...(253_402_300_799 * 1_000_000 + 999_999)

    /// RFC 3339 in UTC: `2024-05-01T12:34:56Z`, with `.mmm` or `.uuuuuu` only when the fraction is
    /// not zero. Instants outside years 0000–9999 are clamped to that range.
    public var rfc3339: String {
        let micros = min(max(microsecondsSinceEpoch, Self.rfc3339Range.lowerBound), Self.rfc3339Range.upperBound)
        var seconds = micros / 1_000_000
        var fraction = micros % 1_000_000
        if fraction < 0 {
            fraction += 1_000_000
            seconds -= 1
        }
        var days = seconds / 86_400
        var secondOfDay = seconds % 86_400
        if secondOfDay < 0 {
            secondOfDay += 86_400
            days -= 1
        }
        let (year, month, day) = Self.civil(fromDays: days)
        let digits = fraction == 0 ? 0 : fraction % 1000 == 0 ? 3 : 6
        let length = 20 + (digits == 0 ? 0 : digits + 1)
        return String(unsafeUninitializedCapacity: length) { out in
            var n = 0
            func put(_ value: Int64, width: Int) {
                var v = value
                var k = width - 1
                while k >= 0 {
                    out[n + k] = UInt8(ascii: "0") + UInt8(v % 10)
                    v /= 10
                    k -= 1
                }
                n += width
            }
            func put(_ ascii: Unicode.Scalar) {
                out[n] = UInt8(ascii: ascii)
                n += 1
            }
            put(year, width: 4); put("-"); put(month, width: 2); put("-"); put(day, width: 2)
            put("T")
            put(secondOfDay / 3600, width: 2); put(":"); put(secondOfDay / 60 % 60, width: 2); put(":")
            put(secondOfDay % 60, width: 2)
            if digits == 3 {
                put("."); put(fraction / 1000, width: 3)
            } else if digits == 6 {
                put("."); put(fraction, width: 6)
            }
            put("Z")
            return n
        }
    }

    /// Parses RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`. `t`, `z` and a space
    /// separator are accepted; fraction digits past microseconds are truncated; a leap second `:60`
    /// is read as the last microsecond of its minute.
    public init(rfc3339 text: String) throws(TimestampError) {
        var copy = text
        let result: Result<Int64, TimestampError> = copy.withUTF8 { Self.parse($0, text: text) }
        switch result {
        case .success(let micros): self.microsecondsSinceEpoch = micros
        case .failure(let error): throw error
        }
    }

    private static func parse(_ b: UnsafeBufferPointer<UInt8>, text: String) -> Result<Int64, TimestampError> {
        func fail(_ reason: String, _ offset: Int) -> Result<Int64, TimestampError> {
            .failure(TimestampError(input: text, reason: reason, byteOffset: offset))
        }
        var i = 0
        func number(_ width: Int) -> Int64? {
            guard i + width <= b.count else { return nil }
            var v: Int64 = 0
            for k in 0..<width {
                let d = b[i + k] &- UInt8(ascii: "0")
                guard d < 10 else { return nil }
                v = v * 10 + Int64(d)
            }
            i += width
            return v
        }
        func expect(_ options: UInt8...) -> Bool {
            guard i < b.count, options.contains(b[i]) else { return false }
            i += 1
            return true
        }
        guard let year = number(4) else { return fail("expected a 4-digit year", i) }
        guard expect(UInt8(ascii: "-")) else { return fail("expected \"-\" after the year", i) }
        guard let month = number(2), (1...12).contains(month) else { return fail("expected a month 01-12", 5) }
        guard expect(UInt8(ascii: "-")) else { return fail("expected \"-\" after the month", i) }
        guard let day = number(2), day >= 1, day <= daysIn(month: month, year: year) else {
            return fail("expected a day 01-\(daysIn(month: month, year: year))", 8)
        }
        guard expect(UInt8(ascii: "T"), UInt8(ascii: "t"), UInt8(ascii: " ")) else {
            return fail("expected \"T\" between date and time", i)
        }
        guard let hour = number(2), hour < 24 else { return fail("expected an hour 00-23", 11) }
        guard expect(UInt8(ascii: ":")) else { return fail("expected \":\" after the hour", i) }
        guard let minute = number(2), minute < 60 else { return fail("expected a minute 00-59", 14) }
        guard expect(UInt8(ascii: ":")) else { return fail("expected \":\" after the minute", i) }
        guard var second = number(2), second <= 60 else { return fail("expected a second 00-60", 17) }
        var fraction: Int64 = 0
        if expect(UInt8(ascii: ".")) {
            let start = i
            var scale: Int64 = 100_000
            while i < b.count, b[i] &- UInt8(ascii: "0") < 10 {
                fraction += Int64(b[i] - UInt8(ascii: "0")) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return fail("expected digits after \".\"", i) }
        }
        if second == 60 {
            second = 59
            fraction = 999_999
        }
        var offsetSeconds: Int64 = 0
        if expect(UInt8(ascii: "Z"), UInt8(ascii: "z")) {
            offsetSeconds = 0
        } else if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            let sign: Int64 = b[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            let at = i
            guard let oh = number(2), oh < 24, expect(UInt8(ascii: ":")), let om = number(2), om < 60 else {
                return fail("expected an offset HH:MM", at)
            }
            offsetSeconds = sign * (oh * 3600 + om * 60)
        } else {
            return fail("expected \"Z\" or an offset like +02:00", i)
        }
        guard i == b.count else { return fail("unexpected text after the time", i) }
        let days = Self.days(fromCivil: year, month, day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
        return .success(seconds * 1_000_000 + fraction)
    }

    private static func isLeap(_ year: Int64) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    private static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Proleptic Gregorian calendar arithmetic on 400-year eras (146 097 days each), counting years
    // from March so that the leap day falls at the end of a year.
    static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let shiftedMonth = month > 2 ? month - 3 : month + 9
        let dayOfYear = (153 * shiftedMonth + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

public struct TimestampError: MeshError, Equatable {
    public let input: String
    public let reason: String
    public let byteOffset: Int

    public var code: String { "time.invalid" }
    public var message: String {
        "invalid RFC 3339 time \(TopicSyntax.quoted(input)): \(reason) (byte \(byteOffset))"
    }
}
