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

    /// When set (a server's), PUBLISH_BATCH frames come out as `.publishEncoded`: their events are
    /// checked and stored in their encoding, not decoded.
    public let keepsEncodedEvents: Bool

    public init(maxFrameLength: UInt32 = WireProtocol.defaultMaxFrameLength, keepsEncodedEvents: Bool = false) {
        self.maxFrameLength = maxFrameLength
        self.keepsEncodedEvents = keepsEncodedEvents
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Frame.decode(from: &buffer, maxFrameLength: maxFrameLength,
                                           keepingEncodedEvents: keepsEncodedEvents) else {
            return .needMoreData
        }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }
}

/// Writes frames with their length prefix.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    public init() {}

    public func encode(data: Frame, out: inout ByteBuffer) throws {
        data.encode(into: &out)
    }
}
