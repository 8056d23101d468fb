/// The type byte of a frame (docs/protocol.md, "Frame types"). Values are grouped: 0x0_ for the
/// connection, 0x1_ for publishing, 0x2_ for subscriptions.
public enum FrameType: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case hello = 0x01
    case welcome = 0x02
    case ping = 0x03
    case pong = 0x04
    case goodbye = 0x05
    case error = 0x06

    case publish = 0x10
    case publishBatch = 0x11
    case publishAck = 0x12

    case subscribe = 0x20
    case subscribed = 0x21
    case event = 0x22
    case credit = 0x23
    case ack = 0x24
    case unsubscribe = 0x25
    case unsubscribed = 0x26
    case assignment = 0x27

    public var description: String {
        switch self {
        case .hello: "HELLO"
        case .welcome: "WELCOME"
        case .ping: "PING"
        case .pong: "PONG"
        case .goodbye: "GOODBYE"
        case .error: "ERROR"
        case .publish: "PUBLISH"
        case .publishBatch: "PUBLISH_BATCH"
        case .publishAck: "PUBLISH_ACK"
        case .subscribe: "SUBSCRIBE"
        case .subscribed: "SUBSCRIBED"
        case .event: "EVENT"
        case .credit: "CREDIT"
        case .ack: "ACK"
        case .unsubscribe: "UNSUBSCRIBE"
        case .unsubscribed: "UNSUBSCRIBED"
        case .assignment: "ASSIGNMENT"
        }
    }

    /// What the header's id field holds for this type, which the decoder enforces.
    enum StreamIDRule {
        /// Always 0.
        case zero
        /// A request or subscription id, never 0.
        case nonZero
        /// Any value (PING/PONG nonces, ERROR's "about" id).
        case any
    }

    var streamIDRule: StreamIDRule {
        switch self {
        case .hello, .welcome, .goodbye: .zero
        case .ping, .pong, .error: .any
        case .publish, .publishBatch, .publishAck, .subscribe, .subscribed, .event, .credit, .ack,
             .unsubscribe, .unsubscribed, .assignment: .nonZero
        }
    }

    /// The flag bits this type defines; any other bit set is a bad frame.
    var knownFlags: UInt8 {
        switch self {
        case .hello: FrameFlags.helloHasToken | FrameFlags.helloBridge
        case .error: FrameFlags.errorFatal
        case .subscribe: FrameFlags.subscribeHasGroup
        default: 0
        }
    }
}

/// Flag bits of the header's flags byte. Their meaning depends on the frame type.
enum FrameFlags {
    static let helloHasToken: UInt8 = 0x01
    static let helloBridge: UInt8 = 0x02
    static let errorFatal: UInt8 = 0x01
    static let subscribeHasGroup: UInt8 = 0x01
}
