/// Who holds open, lock or lease state on a file. Protocol-neutral: NFSv4 puts its client id
/// and open-owner or lock-owner here, SMB its session and lease key (or file id). Two calls
/// with equal owners are the same holder; different owners conflict.
public struct StateOwner: Hashable, Sendable, CustomStringConvertible {
    public var client: UInt64
    public var owner: UInt64

    public init(client: UInt64, owner: UInt64) {
        self.client = client
        self.owner = owner
    }

    public var description: String { "\(client):\(owner)" }
}

/// What an open may do (its access) or forbids others to do (its deny mode): NFSv4
/// OPEN4_SHARE_ACCESS / OPEN4_SHARE_DENY, SMB DesiredAccess / the complement of ShareAccess.
public struct ShareMode: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let read = ShareMode(rawValue: 1)
    public static let write = ShareMode(rawValue: 2)
    /// Delete or rename (SMB's DELETE access and FILE_SHARE_DELETE; NFSv4 has no such bit).
    public static let delete = ShareMode(rawValue: 4)

    public static let none: ShareMode = []
    public static let both: ShareMode = [.read, .write]
}

/// Bytes [start, end) of a file, or [start, 2^64) when `throughLastByte` is set: the end of a
/// range that runs to the end of the 64-bit offset space (an SMB lock may cover byte 2^64 - 1,
/// which a 64-bit exclusive end cannot say). `end == UInt64.max` reaches past any real offset.
public struct ByteRange: Hashable, Sendable, CustomStringConvertible {
    public var start: UInt64
    public var end: UInt64
    /// The range also covers byte UInt64.max (only with `end == .max`).
    public var throughLastByte: Bool

    /// `length` bytes from `offset`; a range that would end past 2^64 - 1 ends at 2^64 (so
    /// NFSv4's length of all ones means "to the end"). A length of 0 is an empty range.
    public init(offset: UInt64, length: UInt64) {
        start = offset
        let (sum, overflow) = offset.addingReportingOverflow(length)
        end = overflow ? .max : sum
        throughLastByte = overflow
    }

    public init(start: UInt64, end: UInt64, throughLastByte: Bool = false) {
        self.start = start
        self.end = max(start, end)
        self.throughLastByte = throughLastByte && end == .max
    }

    public static let whole = ByteRange(start: 0, end: .max, throughLastByte: true)

    /// Whether byte `offset` lies below the range's end.
    @inline(__always)
    func endsAfter(_ offset: UInt64) -> Bool {
        offset < end || throughLastByte && offset == .max
    }

    /// Whether the range reaches further than `other`.
    @inline(__always)
    func endsBeyond(_ other: ByteRange) -> Bool {
        end > other.end || end == other.end && throughLastByte && !other.throughLastByte
    }

    public var isEmpty: Bool { !endsAfter(start) }

    /// Whether they share a byte, or an empty range at X lies strictly inside the other (the
    /// zero-length lock rule of MS-FSA §2.1.5.7).
    @inline(__always)
    public func overlaps(_ other: ByteRange) -> Bool {
        other.endsAfter(start) && endsAfter(other.start)
    }

    public var description: String { end == .max ? "[\(start), ∞)" : "[\(start), \(end))" }
}

/// A byte-range lock: shared (read) locks of different owners coexist; an exclusive (write)
/// lock conflicts with any other owner's lock on overlapping bytes.
public enum LockKind: Sendable, Hashable {
    case shared
    case exclusive
}

public struct ByteRangeLock: Sendable, Hashable, CustomStringConvertible {
    public var owner: StateOwner
    public var kind: LockKind
    public var range: ByteRange

    public init(owner: StateOwner, kind: LockKind, range: ByteRange) {
        self.owner = owner
        self.kind = kind
        self.range = range
    }

    /// True when `self` stops `kind` on `range` by `owner`.
    @inline(__always)
    func conflicts(with owner: StateOwner, _ kind: LockKind, _ range: ByteRange) -> Bool {
        self.owner != owner && self.range.overlaps(range) && (self.kind == .exclusive || kind == .exclusive)
    }

    public var description: String { "\(kind) \(range) by \(owner)" }
}

/// Caching a client may do without asking: SMB lease bits (R, W, H); an NFSv4 read delegation
/// is `[.read]`, a write delegation `[.read, .write]`.
public struct LeaseState: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let read = LeaseState(rawValue: 1)
    public static let write = LeaseState(rawValue: 2)
    /// Keeping handles open after the application closed them (SMB only).
    public static let handle = LeaseState(rawValue: 4)

    public var description: String {
        rawValue == 0 ? "none" : (contains(.read) ? "R" : "") + (contains(.write) ? "W" : "") + (contains(.handle) ? "H" : "")
    }
}

/// A request to a lease holder to give up some of its caching: sent through the callback the
/// holder registered, outside any lock. The holder answers with `FileState.acknowledgeBreak`
/// (or loses it by `releaseLease`; a break unanswered for `FileState.breakTimeout` is forced).
public struct LeaseBreak: Sendable, Hashable {
    public var file: FileHandle
    public var holder: StateOwner
    public var from: LeaseState
    public var to: LeaseState

    public init(file: FileHandle, holder: StateOwner, from: LeaseState, to: LeaseState) {
        self.file = file
        self.holder = holder
        self.from = from
        self.to = to
    }
}

/// How a holder is told to break its lease (an NFSv4 CB_RECALL, an SMB lease break
/// notification). Called on the thread of the open that conflicts; it must not block.
public typealias LeaseBreakHandler = @Sendable (LeaseBreak) -> Void

/// The answer to an open.
public enum OpenOutcome: Sendable {
    /// Opened; the handle carries the file's state for every later call.
    case opened(OpenFile)
    /// An existing open's deny mode forbids this access, or this deny mode forbids an
    /// existing open's access (NFS4ERR_SHARE_DENIED, STATUS_SHARING_VIOLATION).
    case shareDenied
    /// The file is to be deleted when its last open closes; no new open until then
    /// (STATUS_DELETE_PENDING).
    case deletePending
    /// Leases of other holders must be broken first: their holders were told (these
    /// breaks), and the open should be retried when they answer (SMB waits, NFSv4 answers
    /// NFS4ERR_DELAY).
    case waitForLeaseBreak([LeaseBreak])
}

/// The answer to a lock request.
public enum LockOutcome: Sendable, Equatable {
    case granted
    /// Another owner holds this conflicting lock (NFSv4 LOCK4denied, SMB
    /// STATUS_LOCK_NOT_GRANTED / FILE_LOCK_CONFLICT).
    case denied(ByteRangeLock)
}
