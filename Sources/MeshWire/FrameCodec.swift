import NIOCore

/// Splits inbound bytes into frames. The length prefix is checked against `maxFrameLength` before
/// any body is awaited, so an oversized or garbage prefix fails at once (see `Frame.decode`).
///
/// A thrown `WireError` is fatal; the channel handler answers it with the ERROR frame the state
/// machine's `decodingFailed(_:)` gives and closes. After a throw NIO stops calling this decoder.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame

    /// The largest length prefix accepted. The server sets it from its configuration; a client sets
    /// it from WELCOME once that arrives.
    public var maxFrameLength: UInt32

    /// When set (by the connection's handler, once HELLO announced a bridge), PUBLISH_BATCH frames
    /// come out as `.publishEncoded`. Read on the channel's event loop only.
    public let keepsEncodedEvents: EncodedEventsSwitch?

    public init(maxFrameLength: UInt32 = WireProtocol.defaultMaxFrameLength, keepsEncodedEvents: EncodedEventsSwitch? = nil) {
        self.maxFrameLength = maxFrameLength
        self.keepsEncodedEvents = keepsEncodedEvents
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Frame.decode(from: &buffer, maxFrameLength: maxFrameLength,
                                           keepingEncodedEvents: keepsEncodedEvents?.isOn ?? false) else {
            return .needMoreData
        }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }
}

/// Shared by a connection's decoder and its handler, both on the channel's event loop: the handler
/// turns it on when HELLO announces a bridge. A frame read after HELLO is decoded after the handler
/// saw HELLO (the decoder hands frames on one at a time, synchronously).
public final class EncodedEventsSwitch: @unchecked Sendable {
    public var isOn = false
    public init() {}
}

/// Writes frames with their length prefix.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    public init() {}

    public func encode(data: Frame, out: inout ByteBuffer) throws {
        data.encode(into: &out)
    }
}
