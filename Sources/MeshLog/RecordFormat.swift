import CMeshSupport

/// The on-disk framing of one record in a segment file (all integers little-endian):
///
///     0  u32  length     bytes after this field: 20 + payload length
///     4  u32  crc32c     of the payload followed by bytes 8 ..< 24 (offset, timestamp)
///     8  u64  offset     the record's offset in its partition
///     16 i64  timestamp  append time, microseconds since the Unix epoch
///     24 ...  payload
///
/// The checksum covers the payload first so that producers can checksum their payloads on their
/// own threads; the writer only extends it over the 16 header bytes. See docs/log-format.md.
enum RecordFormat {
    static let headerSize = 24
    /// Bytes covered by `length` besides the payload.
    static let lengthOverhead = 20

    /// The payload's part of a record checksum.
    @inline(__always)
    static func payloadChecksum(_ payload: UnsafeRawBufferPointer) -> UInt32 {
        mesh_crc32c(0, payload.baseAddress, payload.count)
    }

    /// Writes one framed record at `p`, which must have room for `headerSize + payload.count` bytes.
    @inline(__always)
    static func write(offset: Int64, timestamp: Int64, payload: UnsafeRawBufferPointer, to p: UnsafeMutableRawPointer) {
        write(offset: offset, timestamp: timestamp, payload: payload, payloadCRC: payloadChecksum(payload), to: p)
    }

    /// The same, with the payload's checksum already computed by `payloadChecksum`.
    @inline(__always)
    static func write(offset: Int64, timestamp: Int64, payload: UnsafeRawBufferPointer, payloadCRC: UInt32, to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: UInt32(lengthOverhead + payload.count).littleEndian, as: UInt32.self)
        (p + 8).storeBytes(of: UInt64(bitPattern: offset).littleEndian, as: UInt64.self)
        (p + 16).storeBytes(of: UInt64(bitPattern: timestamp).littleEndian, as: UInt64.self)
        if payload.count > 0 { (p + headerSize).copyMemory(from: payload.baseAddress!, byteCount: payload.count) }
        let crc = mesh_crc32c(payloadCRC, p + 8, 16)
        (p + 4).storeBytes(of: crc.littleEndian, as: UInt32.self)
    }

    enum Parsed {
        /// A whole, verified record: its offset, timestamp, payload range within the buffer and total size.
        case record(offset: Int64, timestamp: Int64, payload: Range<Int>, size: Int)
        /// The buffer ends before the record does; `needed` bytes from the record start would hold it.
        case incomplete(needed: Int)
        /// The bytes at this position are not a valid record (bad length or checksum).
        case invalid(reason: String)
    }

    /// Parses and verifies the record starting at `at` in `buffer`.
    @inline(__always)
    static func parse(_ buffer: UnsafeRawBufferPointer, at: Int, maxRecordBytes: Int) -> Parsed {
        let available = buffer.count - at
        if available < 4 { return .incomplete(needed: headerSize) }
        let base = buffer.baseAddress! + at
        let length = Int(UInt32(littleEndian: base.loadUnaligned(as: UInt32.self)))
        if length < lengthOverhead || length > maxRecordBytes + lengthOverhead {
            return .invalid(reason: "record length \(length) is out of bounds")
        }
        let size = 4 + length
        if available < size { return .incomplete(needed: size) }
        let stored = UInt32(littleEndian: (base + 4).loadUnaligned(as: UInt32.self))
        let crc = mesh_crc32c(mesh_crc32c(0, base + headerSize, length - lengthOverhead), base + 8, 16)
        if crc != stored { return .invalid(reason: "checksum mismatch") }
        let offset = Int64(bitPattern: UInt64(littleEndian: (base + 8).loadUnaligned(as: UInt64.self)))
        let timestamp = Int64(bitPattern: UInt64(littleEndian: (base + 16).loadUnaligned(as: UInt64.self)))
        return .record(offset: offset, timestamp: timestamp, payload: (at + headerSize)..<(at + size), size: size)
    }
}

/// Public CRC32C over bytes, for tests and other modules that frame their own files.
public func crc32c(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
    mesh_crc32c(seed, bytes.baseAddress, bytes.count)
}
