/// Constants of the TCP protocol that both sides share.
public enum WireProtocol {
    /// The protocol versions this build speaks. Version 0 is never valid.
    public static let supportedVersions: ClosedRange<UInt16> = 1...1

    /// Bytes of the length prefix.
    public static let lengthPrefixSize = 4
    /// Bytes the length prefix counts before the body: type, flags, id.
    public static let headerSize = 6

    /// The default largest value of the length prefix: a maximum-size event (1 MiB) plus room for
    /// the frame header and the EVENT / PUBLISH fields around it.
    public static let defaultMaxFrameLength: UInt32 = (1 << 20) + (64 << 10)

    /// The default largest encoded event (SPEC §8).
    public static let defaultMaxEventSize = 1 << 20

    /// The longest string a frame can hold (u16 length).
    public static let maxStringLength = Int(UInt16.max)
    /// Topics, patterns, group names and node names are at most this many bytes.
    public static let maxNameLength = 255
}
