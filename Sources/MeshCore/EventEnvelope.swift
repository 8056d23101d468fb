/// What a bridge needs of an encoded event — id, topic, partition key, hop list, whether filling
/// would change it — read from its bytes without decoding it into an `Event`, so a forwarded event
/// can be checked and stored as the bytes it arrived in, with one hop appended
/// (`EventCodec.appendingHop`). See docs/bridging.md, "Pass-through".
public struct EventEnvelope: Sendable {
    /// The encoding, exactly as given.
    public let bytes: [UInt8]
    public let id: String
    public let topic: Topic
    public let partitionKey: String?
    /// The first hop (the origin site), nil when the hop list is empty.
    public let origin: String?
    public let hopCount: Int
    /// Microseconds since the epoch, nil when the event has no time.
    public let time: Int64?
    /// Bytes of `data`.
    public let dataCount: Int
    /// Id, source and type are non-empty and the time and the hop list are present: storing the
    /// event as published (`EventCodec.encodeFilled`) writes exactly these bytes.
    public let isFilled: Bool
    let layout: EventCodec.Layout

    /// Reads and checks an encoding as strictly as `EventCodec.decode`: what it rejects, this
    /// rejects with the same error; what it accepts, this accepts. Extension names are also checked
    /// as `Event.validateExtensions` checks them (`extensionError`).
    public init(_ bytes: [UInt8]) throws(EventDecodingError) {
        let result: Result<(EventCodec.Layout, String, Topic, String?, String?), EventDecodingError> = bytes.withUnsafeBytes { raw in
            Result { () throws(EventDecodingError) in try Self.read(raw) }
        }
        let (layout, id, topic, key, origin) = try result.get()
        self.bytes = bytes
        self.layout = layout
        self.id = id
        self.topic = topic
        partitionKey = key
        self.origin = origin
        hopCount = layout.hopCount
        time = layout.time
        dataCount = layout.data.count
        isFilled = !layout.id.isEmpty && !layout.source.isEmpty && !layout.type.isEmpty && layout.time != nil && layout.hopCount > 0
    }

    /// The first extension whose name `Event.validateExtensions` refuses, with why; nil when all pass.
    public var extensionError: EventError? {
        guard layout.extensionCount > 0 else { return nil }
        return bytes.withUnsafeBytes { raw -> EventError? in
            var reader = EventCodec.Reader(base: raw)
            reader.position = layout.extensionsAt
            guard let count = try? reader.varint("extension count") else { return nil }
            for _ in 0..<count {
                guard let name = try? reader.string("extension name"), let n = try? reader.length("extension value") else { return nil }
                reader.position += n
                do throws(EventError) { try Event.validateExtensionName(name) } catch { return error }
            }
            return nil
        }
    }

    /// True when a hop equals `site`: the event has been there.
    public func names(hop site: String) -> Bool {
        bytes.withUnsafeBytes { raw in
            var reader = EventCodec.Reader(base: raw)
            reader.position = layout.hopsAt
            guard let count = try? reader.varint("hop count") else { return false }
            return TopicSyntax.withUTF8(site) { wanted in
                for _ in 0..<count {
                    guard let n = try? reader.length("hop") else { return false }
                    let hop = UnsafeRawBufferPointer(rebasing: raw[reader.position..<(reader.position + n)])
                    reader.position += n
                    if EventCodec.equal(hop, UnsafeRawBufferPointer(wanted)) { return true }
                }
                return false
            }
        }
    }

    /// The encoding as it is stored on publish, and the id it carries: what
    /// `EventCodec.encodeFilled` writes for the decoded event, written from these bytes. An
    /// encoding that is filled already is returned as it is.
    public func filled(node: String, ingress: String, originHop: String,
                       now: Timestamp = .now(), ids: EventIDGenerator = .shared) -> (id: String, bytes: [UInt8]) {
        if isFilled { return (id, bytes) }
        let newID = id.isEmpty ? ids.next(milliseconds: UInt64(max(0, now.millisecondsSinceEpoch))).description : nil
        let fills = EventCodec.Fills(
            id: newID,
            source: layout.source.isEmpty ? Event.defaultSource(node: node, ingress: ingress) : nil,
            type: layout.type.isEmpty ? Event.defaultType : nil,
            time: layout.time == nil ? now.microsecondsSinceEpoch : nil,
            hop: layout.hopCount == 0 ? originHop : nil)
        return (newID ?? id, bytes.withUnsafeBytes { EventCodec.filling(fills, in: $0, layout) })
    }

    /// The encoding with `hop` appended to the hop list, every other byte kept.
    public func appendingHop(_ hop: String) -> [UInt8] {
        bytes.withUnsafeBytes { EventCodec.appendingHop(hop, to: $0, layout) }
    }

    private static func read(_ raw: UnsafeRawBufferPointer) throws(EventDecodingError) -> (EventCodec.Layout, String, Topic, String?, String?) {
        let layout = try EventCodec.layout(raw, validating: true)
        var reader = EventCodec.Reader(base: raw)
        func text(_ range: Range<Int>) -> String {
            String(decoding: UnsafeRawBufferPointer(rebasing: raw[range]).assumingMemoryBound(to: UInt8.self), as: UTF8.self)
        }
        let name = text(layout.topic)
        let topic: Topic
        do { topic = try Topic(name) } catch {
            throw EventDecodingError(.invalidTopic, at: layout.topicField.lowerBound, error.message)
        }
        var origin: String?
        if layout.hopCount > 0 {
            reader.position = layout.hopsAt
            _ = try reader.varint("hop count")
            origin = try reader.string("hop")
        }
        return (layout, text(layout.id), topic, layout.partitionKey.map(text), origin)
    }
}

extension EventCodec {
    /// Where the parts of an encoding are. Ranges of strings exclude their length prefix.
    struct Layout: Sendable {
        var id: Range<Int> = 0..<0
        var source: Range<Int> = 0..<0
        var type: Range<Int> = 0..<0
        var topic: Range<Int> = 0..<0
        /// The topic with its length prefix.
        var topicField: Range<Int> = 0..<0
        /// Offset of the time, or of where it would go (after the subject).
        var timeAt = 0
        var time: Int64?
        var partitionKey: Range<Int>?
        /// Offset of the extension count, and the count.
        var extensionsAt = 0
        var extensionCount = 0
        /// Offset of the hop count, the count, and the last hop's text.
        var hopsAt = 0
        var hopCount = 0
        var lastHop: Range<Int>?
        /// Offset of the data's length, and the data.
        var dataAt = 0
        var data: Range<Int> = 0..<0
    }

    /// Walks an encoding. Lengths, varints, the version, the flags and trailing bytes are always
    /// checked; with `validating`, so is everything else `decode` checks but the topic's syntax
    /// (strings are UTF-8, extensions strictly ascending), so that `decode` would accept it once
    /// the topic is.
    static func layout(_ buffer: UnsafeRawBufferPointer, validating: Bool) throws(EventDecodingError) -> Layout {
        var reader = Reader(base: buffer)
        var layout = Layout()
        let flags = try reader.versionAndFlags()
        func field(_ name: StaticString) throws(EventDecodingError) -> Range<Int> {
            let n = try reader.length(name)
            let start = reader.position
            reader.position += n
            if validating {
                let raw = UnsafeRawBufferPointer(rebasing: buffer[start..<(start + n)])
                if !Reader.isASCII(raw), String(validating: raw.assumingMemoryBound(to: UInt8.self), as: UTF8.self) == nil {
                    throw EventDecodingError(.invalidUTF8, at: start, "\(name) at byte \(start) is not valid UTF-8")
                }
            }
            return start..<(start + n)
        }
        layout.id = try field("id")
        layout.source = try field("source")
        layout.type = try field("type")
        let topicStart = reader.position
        layout.topic = try field("topic")
        layout.topicField = topicStart..<reader.position
        if flags & Flag.subject != 0 { _ = try field("subject") }
        layout.timeAt = reader.position
        if flags & Flag.time != 0 { layout.time = try reader.int64("time") }
        if flags & Flag.datacontenttype != 0 { _ = try field("datacontenttype") }
        if flags & Flag.dataschema != 0 { _ = try field("dataschema") }
        if flags & Flag.partitionKey != 0 { layout.partitionKey = try field("partitionkey") }
        if flags & Flag.traceparent != 0 { _ = try field("traceparent") }
        if flags & Flag.tracestate != 0 { _ = try field("tracestate") }
        layout.extensionsAt = reader.position
        layout.extensionCount = try reader.count("extension count", minimumBytesEach: 2)
        var previous: Range<Int>?
        for _ in 0..<layout.extensionCount {
            let nameOffset = reader.position
            let name = try field("extension name")
            if validating, let previous {
                let a = UnsafeRawBufferPointer(rebasing: buffer[previous]), b = UnsafeRawBufferPointer(rebasing: buffer[name])
                if !a.lexicographicallyPrecedes(b) {
                    let text = String(decoding: b.assumingMemoryBound(to: UInt8.self), as: UTF8.self)
                    throw EventDecodingError(.unsortedExtensions, at: nameOffset,
                        "extension \(TopicSyntax.quoted(text)) is out of order or repeated; names must be strictly ascending")
                }
            }
            previous = name
            _ = try field("extension value")
        }
        layout.hopsAt = reader.position
        layout.hopCount = try reader.count("hop count", minimumBytesEach: 1)
        for _ in 0..<layout.hopCount { layout.lastHop = try field("hop") }
        layout.dataAt = reader.position
        let dataLength = try reader.length("data")
        layout.data = reader.position..<(reader.position + dataLength)
        reader.position += dataLength
        guard reader.position == buffer.count else {
            throw EventDecodingError(.trailingBytes, at: reader.position,
                "\(buffer.count - reader.position) unexpected bytes after the data")
        }
        return layout
    }

    /// Byte equality, a word at a time (the generic `elementsEqual` goes byte by byte through
    /// iterators).
    static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        var i = 0
        while i + 8 <= a.count {
            if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
            i += 8
        }
        while i < a.count {
            if a[i] != b[i] { return false }
            i += 1
        }
        return true
    }

    /// What filling sets in an encoding that lacks it (nil: kept as it is).
    struct Fills {
        var id: String?
        var source: String?
        var type: String?
        /// Microseconds since the epoch.
        var time: Int64?
        /// The hop list's only hop, for an encoding without hops.
        var hop: String?
    }

    /// The encoding with `fills` written in place of the empty id, source and type, and the
    /// missing time and hop list; every other byte kept.
    static func filling(_ fills: Fills, in encoded: UnsafeRawBufferPointer, _ layout: Layout) -> [UInt8] {
        func fieldSize(_ text: Range<Int>) -> Int { varintSize(UInt64(text.count)) + text.count }
        var size = encoded.count
        if let id = fills.id { size += stringSize(id) - fieldSize(layout.id) }
        if let source = fills.source { size += stringSize(source) - fieldSize(layout.source) }
        if let type = fills.type { size += stringSize(type) - fieldSize(layout.type) }
        if fills.time != nil { size += 8 }
        if let hop = fills.hop { size += varintSize(1) - varintSize(UInt64(layout.hopCount)) + stringSize(hop) }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var writer = Writer(base: UnsafeMutableRawBufferPointer(buffer))
            func copy(_ range: Range<Int>) { writer.bytes(UnsafeRawBufferPointer(rebasing: encoded[range])) }
            writer.byte(encoded[0])
            writer.byte(fills.time == nil ? encoded[1] : encoded[1] | Flag.time)
            // Each string field starts where the one before it ends (the first after the flags).
            if let id = fills.id { writer.string(id) } else { copy(2..<layout.id.upperBound) }
            if let source = fills.source { writer.string(source) } else { copy(layout.id.upperBound..<layout.source.upperBound) }
            if let type = fills.type { writer.string(type) } else { copy(layout.source.upperBound..<layout.type.upperBound) }
            copy(layout.type.upperBound..<layout.timeAt)
            if let time = fills.time {
                writer.base.storeBytes(of: time.littleEndian, toByteOffset: writer.position, as: Int64.self)
                writer.position += 8
            }
            if let hop = fills.hop {
                copy(layout.timeAt..<layout.hopsAt)
                writer.varint(1)
                writer.string(hop)
                copy(layout.dataAt..<encoded.count)
            } else {
                copy(layout.timeAt..<encoded.count)
            }
            assert(writer.position == size)
            initialized = writer.position
        }
    }

    /// The encoding with `hop` appended to its hop list: what encoding the decoded event with that
    /// hop appended would give.
    static func appendingHop(_ hop: String, to encoded: UnsafeRawBufferPointer, _ layout: Layout) -> [UInt8] {
        let oldCount = varintSize(UInt64(layout.hopCount))
        let newCount = varintSize(UInt64(layout.hopCount + 1))
        let size = encoded.count - oldCount + newCount + stringSize(hop)
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var writer = Writer(base: UnsafeMutableRawBufferPointer(buffer))
            writer.bytes(UnsafeRawBufferPointer(rebasing: encoded[..<layout.hopsAt]))
            writer.varint(UInt64(layout.hopCount + 1))
            writer.bytes(UnsafeRawBufferPointer(rebasing: encoded[(layout.hopsAt + oldCount)..<layout.dataAt]))
            writer.string(hop)
            writer.bytes(UnsafeRawBufferPointer(rebasing: encoded[layout.dataAt...]))
            initialized = writer.position
        }
    }

    /// The encoding as it leaves `site` over a bridge: its hop list ends with `site` (appended
    /// unless it is the last hop already), every other byte kept — what `decode`, appending the
    /// hop and `encode` would give. Also returns the event's time (µs), if it has one. Only lengths
    /// are checked: the bytes come from this site's own log.
    public static func leaving(_ encoded: [UInt8], site: String) throws(EventDecodingError) -> (bytes: [UInt8], time: Int64?) {
        let result: Result<(bytes: [UInt8], time: Int64?), EventDecodingError> = encoded.withUnsafeBytes { raw in
            Result { () throws(EventDecodingError) in
                let layout = try layout(raw, validating: false)
                if let last = layout.lastHop {
                    let isSite = TopicSyntax.withUTF8(site) { equal(UnsafeRawBufferPointer(rebasing: raw[last]), UnsafeRawBufferPointer($0)) }
                    if isSite { return (encoded, layout.time) }
                }
                return (appendingHop(site, to: raw, layout), layout.time)
            }
        }
        return try result.get()
    }
}
