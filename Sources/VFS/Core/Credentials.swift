/// Who makes a call: every VFS operation carries one, from AUTH_SYS, an SMB session's user or
/// an S3 access key's user.
public struct Credentials: Sendable, Equatable, Hashable {
    public var uid: UInt32
    public var gid: UInt32
    /// Supplementary groups (AUTH_SYS carries at most 16).
    public var groups: [UInt32]

    public init(uid: UInt32, gid: UInt32, groups: [UInt32] = []) {
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    public static let root = Credentials(uid: 0, gid: 0)

    public var isRoot: Bool { uid == 0 }

    public func isMember(of group: UInt32) -> Bool { gid == group || groups.contains(group) }
}

/// What an access check asks for (the NFSv3 ACCESS bits map onto these).
public struct AccessMask: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let read = AccessMask(rawValue: 1)
    public static let write = AccessMask(rawValue: 2)
    public static let execute = AccessMask(rawValue: 4)
}

/// POSIX permission checks for backends that do not check themselves (memfs, plugins).
public enum Permissions {
    /// The subset of `wanted` that `credentials` may do to an object with these attributes.
    public static func allowed(_ wanted: AccessMask, attributes: Attributes, credentials: Credentials) -> AccessMask {
        if credentials.isRoot {
            // Root may read and write anything; it may execute only what someone may execute.
            var granted = wanted.intersection([.read, .write])
            if wanted.contains(.execute) && (attributes.type == .directory || attributes.mode & 0o111 != 0) {
                granted.insert(.execute)
            }
            return granted
        }
        let bits: UInt32
        if credentials.uid == attributes.uid {
            bits = (attributes.mode >> 6) & 7
        } else if credentials.isMember(of: attributes.gid) {
            bits = (attributes.mode >> 3) & 7
        } else {
            bits = attributes.mode & 7
        }
        var granted: AccessMask = []
        if bits & 4 != 0 { granted.insert(.read) }
        if bits & 2 != 0 { granted.insert(.write) }
        if bits & 1 != 0 { granted.insert(.execute) }
        return granted.intersection(wanted)
    }

    /// Throws `accessDenied` unless every bit of `wanted` is allowed.
    public static func check(_ wanted: AccessMask, attributes: Attributes, credentials: Credentials) throws(VFSError) {
        if allowed(wanted, attributes: attributes, credentials: credentials) != wanted { throw .accessDenied }
    }
}
