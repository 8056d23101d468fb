/// A stable numeric error code of the TCP protocol. The numbers are part of the wire format
/// (docs/protocol.md, "Error codes"): they never change meaning once released, and new ones are only
/// ever added. A peer that receives a code it does not know treats it like `protocolViolation`.
public struct WireErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16

    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The frame could not be parsed: a truncated or over-long body, a bad string, a reserved flag or
    /// an id that must (not) be zero.
    public static let badFrame = WireErrorCode(rawValue: 1)
    /// The length prefix exceeds the maximum frame size.
    public static let frameTooLarge = WireErrorCode(rawValue: 2)
    /// HELLO named no protocol version the server speaks.
    public static let unsupportedVersion = WireErrorCode(rawValue: 3)
    /// Credentials are required and missing, or they were refused.
    public static let authenticationFailed = WireErrorCode(rawValue: 4)
    /// The credentials do not allow this publish or subscribe.
    public static let forbidden = WireErrorCode(rawValue: 5)
    /// A topic or topic pattern breaks the topic rules.
    public static let invalidTopic = WireErrorCode(rawValue: 6)
    /// An event could not be decoded or is not a valid event.
    public static let invalidEvent = WireErrorCode(rawValue: 7)
    /// An event is larger than the server's maximum event size.
    public static let eventTooLarge = WireErrorCode(rawValue: 8)
    /// The subscription id names no open subscription on this connection.
    public static let unknownSubscription = WireErrorCode(rawValue: 9)
    /// Too much in flight; retry after the time the error frame gives.
    public static let overloaded = WireErrorCode(rawValue: 10)
    /// The log cannot store or read right now.
    public static let storageUnavailable = WireErrorCode(rawValue: 11)
    /// The server is starting or shutting down and takes no new work.
    public static let notReady = WireErrorCode(rawValue: 12)
    /// The requested offset is outside the retained range of the partition.
    public static let offsetOutOfRange = WireErrorCode(rawValue: 13)
    /// A well-formed frame that is not allowed here: before HELLO, a reused id, an unexpected type.
    public static let protocolViolation = WireErrorCode(rawValue: 14)
    /// Nothing arrived from the peer for longer than the idle timeout.
    public static let idleTimeout = WireErrorCode(rawValue: 15)
    /// The server failed in a way that is not the client's fault.
    public static let internalError = WireErrorCode(rawValue: 16)

    /// A short stable name for logs and metrics, e.g. `frame_too_large`.
    public var name: String {
        switch rawValue {
        case 1: "bad_frame"
        case 2: "frame_too_large"
        case 3: "unsupported_version"
        case 4: "authentication_failed"
        case 5: "forbidden"
        case 6: "invalid_topic"
        case 7: "invalid_event"
        case 8: "event_too_large"
        case 9: "unknown_subscription"
        case 10: "overloaded"
        case 11: "storage_unavailable"
        case 12: "not_ready"
        case 13: "offset_out_of_range"
        case 14: "protocol_violation"
        case 15: "idle_timeout"
        case 16: "internal_error"
        default: "unknown_\(rawValue)"
        }
    }

    public var description: String { "\(rawValue) (\(name))" }
}

/// An error of the TCP protocol. The same value is what the decoder throws, what a state machine
/// closes a connection with, and what an ERROR frame carries, so nothing is lost between them.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: WireErrorCode
    /// Written for people; may change between releases.
    public var message: String
    /// The request or subscription the error is about; 0 when it is about the connection.
    public var streamID: UInt32
    /// The type of the frame that caused the error, when known.
    public var inReplyTo: FrameType?
    /// For `overloaded`: how long the client should wait before retrying; 0 otherwise.
    public var retryAfterMilliseconds: UInt32
    /// True when the sender closes the connection right after this error.
    public var isFatal: Bool

    public init(
        _ code: WireErrorCode, _ message: String, streamID: UInt32 = 0, inReplyTo: FrameType? = nil,
        retryAfterMilliseconds: UInt32 = 0, isFatal: Bool = false
    ) {
        self.code = code
        self.message = message
        self.streamID = streamID
        self.inReplyTo = inReplyTo
        self.retryAfterMilliseconds = retryAfterMilliseconds
        self.isFatal = isFatal
    }

    public var description: String {
        var text = "wire error \(code): \(message)"
        if streamID != 0 { text += " (stream \(streamID))" }
        return text
    }

    /// The same error marked as closing the connection.
    public func fatal() -> WireError {
        var copy = self
        copy.isFatal = true
        return copy
    }

    /// The same error attributed to a frame, keeping any attribution it already has.
    func attributed(to type: FrameType, streamID: UInt32) -> WireError {
        var copy = self
        if copy.inReplyTo == nil { copy.inReplyTo = type }
        if copy.streamID == 0 { copy.streamID = streamID }
        return copy
    }
}
