import MeshCore
import MeshWire
import NIOCore

/// The TCP frame decoder on arbitrary bytes: every input either decodes into frames, waits for
/// more bytes, or throws a `WireError` — never traps. Each decoded frame is encoded again and must
/// decode to the same frame.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var buffer = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    // A small limit too, so the too-large path is reached by short inputs.
    let limit: UInt32 = size > 0 && data[0] & 1 == 1 ? 4096 : WireProtocol.defaultMaxFrameLength
    while true {
        let frame: Frame?
        do { frame = try Frame.decode(from: &buffer, maxFrameLength: limit) } catch { return 0 }
        guard let frame else { return 0 }
        var again = frame.encoded()
        let decoded = try? Frame.decode(from: &again, maxFrameLength: .max)
        precondition(decoded == frame, "frame \(frame) does not survive encode → decode: \(String(describing: decoded))")
    }
}
