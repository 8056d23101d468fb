import Foundation

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. A date in the past means
/// "now"; anything else unreadable is ignored (the policy's own backoff applies). The wait is
/// capped at an hour so that one odd answer cannot park a destination for days.
enum RetryAfter {
    static let cap: Duration = .seconds(3600)

    static func parse(_ value: String, now: Date = Date()) -> Duration? {
        let v = value.trimmingCharacters(in: .whitespaces)
        if !v.isEmpty, v.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            guard let seconds = Int(v) else { return cap }  // too many digits: "a long time"
            return min(.seconds(seconds), cap)
        }
        guard let date = httpDate(v) else { return nil }
        let seconds = date.timeIntervalSince(now)
        if seconds <= 0 { return .zero }
        return min(.milliseconds(Int64(seconds * 1000)), cap)
    }

    /// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) and the two obsolete forms RFC 9110 says
    /// recipients must accept (RFC 850 and asctime).
    static func httpDate(_ s: String) -> Date? {
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            if let d = formatter(format).date(from: s) { return d }
        }
        return nil
    }

    private static func formatter(_ format: String) -> DateFormatter {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = format
        return f
    }
}
