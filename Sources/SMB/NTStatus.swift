import VFS

/// An NTSTATUS code (MS-ERREF §2.3), the status of every SMB2 response. Also the error type
/// the command handlers throw.
public struct NTStatus: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    public static let success = NTStatus(0x0000_0000)
    public static let pending = NTStatus(0x0000_0103)
    public static let notifyCleanup = NTStatus(0x0000_010B)
    public static let notifyEnumDir = NTStatus(0x0000_010C)
    public static let bufferOverflow = NTStatus(0x8000_0005)
    public static let noMoreFiles = NTStatus(0x8000_0006)
    public static let unsuccessful = NTStatus(0xC000_0001)
    public static let notImplemented = NTStatus(0xC000_0002)
    public static let invalidInfoClass = NTStatus(0xC000_0003)
    public static let infoLengthMismatch = NTStatus(0xC000_0004)
    public static let invalidHandle = NTStatus(0xC000_0008)
    public static let invalidParameter = NTStatus(0xC000_000D)
    public static let noSuchFile = NTStatus(0xC000_000F)
    public static let invalidDeviceRequest = NTStatus(0xC000_0010)
    public static let endOfFile = NTStatus(0xC000_0011)
    public static let moreProcessingRequired = NTStatus(0xC000_0016)
    public static let noMemory = NTStatus(0xC000_0017)
    public static let accessDenied = NTStatus(0xC000_0022)
    public static let bufferTooSmall = NTStatus(0xC000_0023)
    public static let objectNameInvalid = NTStatus(0xC000_0033)
    public static let objectNameNotFound = NTStatus(0xC000_0034)
    public static let objectNameCollision = NTStatus(0xC000_0035)
    public static let objectPathNotFound = NTStatus(0xC000_003A)
    public static let objectPathSyntaxBad = NTStatus(0xC000_003B)
    public static let sharingViolation = NTStatus(0xC000_0043)
    public static let eaTooLarge = NTStatus(0xC000_0050)
    public static let noEasOnFile = NTStatus(0xC000_0052)
    public static let deletePending = NTStatus(0xC000_0056)
    public static let fileLockConflict = NTStatus(0xC000_0054)
    public static let invalidViewSize = NTStatus(0xC000_001F)
    public static let lockNotGranted = NTStatus(0xC000_0055)
    public static let privilegeNotHeld = NTStatus(0xC000_0061)
    public static let logonFailure = NTStatus(0xC000_006D)
    public static let rangeNotLocked = NTStatus(0xC000_007E)
    public static let diskFull = NTStatus(0xC000_007F)
    /// STATUS_IO_DEVICE_ERROR: what Samba answers for EIO from the disk.
    public static let ioDeviceError = NTStatus(0xC000_0185)
    public static let insufficientResources = NTStatus(0xC000_009A)
    public static let fileIsADirectory = NTStatus(0xC000_00BA)
    public static let notSupported = NTStatus(0xC000_00BB)
    public static let networkNameDeleted = NTStatus(0xC000_00C9)
    public static let badNetworkName = NTStatus(0xC000_00CC)
    public static let requestNotAccepted = NTStatus(0xC000_00D0)
    public static let pipeEmpty = NTStatus(0xC000_00D9)
    public static let internalError = NTStatus(0xC000_00E5)
    public static let directoryNotEmpty = NTStatus(0xC000_0101)
    public static let notADirectory = NTStatus(0xC000_0103)
    public static let cancelled = NTStatus(0xC000_0120)
    public static let cannotDelete = NTStatus(0xC000_0121)
    public static let fileClosed = NTStatus(0xC000_0128)
    public static let invalidLevel = NTStatus(0xC000_0148)
    public static let pipeBroken = NTStatus(0xC000_014B)
    public static let userSessionDeleted = NTStatus(0xC000_0203)
    public static let networkSessionExpired = NTStatus(0xC000_035C)
    public static let notFound = NTStatus(0xC000_0225)
    public static let stoppedOnSymlink = NTStatus(0x8000_002D)
    public static let fileTooLarge = NTStatus(0xC000_0904)
    public static let mediaWriteProtected = NTStatus(0xC000_00A2)
    public static let tooManyLinks = NTStatus(0xC000_0265)
    public static let tooManyOpenedFiles = NTStatus(0xC000_011F)
    public static let notSameDevice = NTStatus(0xC000_00D4)
    public static let nameTooLong = NTStatus(0xC000_0106)
    public static let quotaExceeded = NTStatus(0xC000_0044)
    public static let invalidOplockProtocol = NTStatus(0xC000_00E3)
    public static let invalidLockRange = NTStatus(0xC000_01A1)
    public static let badImpersonationLevel = NTStatus(0xC000_00A5)
    public static let rangeNotLocked2 = NTStatus(0xC000_007E)
    public static let objectIDNotFound = NTStatus(0xC000_02F0)

    /// The status an SMB client expects for a VFS failure.
    public init(_ error: VFSError) {
        switch error {
        case .notFound: self = .objectNameNotFound
        case .exists: self = .objectNameCollision
        case .notEmpty: self = .directoryNotEmpty
        case .isDirectory: self = .fileIsADirectory
        case .notDirectory: self = .notADirectory
        case .crossDevice: self = .notSameDevice
        case .nameTooLong: self = .objectNameInvalid
        case .accessDenied, .notPermitted: self = .accessDenied
        case .readOnly: self = .accessDenied
        case .stale, .badHandle: self = .fileClosed
        case .invalid, .badCookie, .notSync: self = .invalidParameter
        case .noSpace: self = .diskFull
        case .quota: self = .quotaExceeded
        case .fileTooBig: self = .diskFull
        case .tooManyLinks: self = .tooManyLinks
        case .symlinkLoop: self = .stoppedOnSymlink
        case .notSupported: self = .notSupported
        case .noData: self = .noEasOnFile
        case .rangeTooBig: self = .bufferTooSmall
        case .busy: self = .sharingViolation
        case .io: self = .ioDeviceError
        case .wouldBlock: self = .lockNotGranted
        }
    }

    /// Errors and warnings: a warning (0x8…) still carries a body of the command's own shape.
    public var isError: Bool { rawValue >> 30 == 3 }

    public var description: String {
        let hex = String(rawValue, radix: 16, uppercase: true)
        return "0x" + String(repeating: "0", count: max(0, 8 - hex.count)) + hex
    }
}
