#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An error from the built-in log. `code` is stable and safe to match on; `message` is for people.
public struct LogError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The disk is full (ENOSPC, EDQUOT). Nothing acknowledged is affected; retry later.
        public static let noSpace = Code(rawValue: "storage.no_space")
        /// The storage device failed (EIO and other I/O errors). The partition stops accepting writes.
        public static let io = Code(rawValue: "storage.io")
        /// A record failed its checksum where the log had already been verified.
        public static let corrupt = Code(rawValue: "storage.corrupt")
        /// The requested offset is before the first retained record or after the end.
        public static let offsetOutOfRange = Code(rawValue: "log.offset_out_of_range")
        public static let unknownTopic = Code(rawValue: "log.unknown_topic")
        public static let unknownPartition = Code(rawValue: "log.unknown_partition")
        public static let invalidConfig = Code(rawValue: "log.invalid_config")
        public static let recordTooLarge = Code(rawValue: "log.record_too_large")
        /// The log is closing or closed.
        public static let closed = Code(rawValue: "log.closed")
        /// A previous storage failure made this partition read-only until the log is reopened.
        public static let failed = Code(rawValue: "storage.failed")
    }

    public let code: Code
    public let message: String
    /// The errno behind the error, when there is one.
    public let errno: Int32?

    public init(_ code: Code, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    /// Maps a failed system call to a typed error: ENOSPC/EDQUOT become `noSpace`, the rest `io`.
    static func system(_ what: String, path: String, errno err: Int32) -> LogError {
        let text = String(cString: strerror(err))
        let code: Code = (err == ENOSPC || err == EDQUOT) ? .noSpace : .io
        return LogError(code, "\(what) \(path): \(text)", errno: err)
    }

    /// True for errors caused by the storage itself, which the HTTP layer reports as 503.
    public var isStorageFailure: Bool {
        code == .noSpace || code == .io || code == .failed || code == .corrupt
    }

    public var description: String { "\(code): \(message)" }
}
