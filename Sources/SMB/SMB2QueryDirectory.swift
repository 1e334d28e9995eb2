import VFS

/// QUERY_DIRECTORY (MS-SMB2 §3.3.5.18): the information classes Windows, smbclient and Linux
/// clients ask for, patterns with * and ? (and the DOS wildcards), restart and resume. The
/// listing resumes from the VFS readdir cookie kept on the open, so a large directory is
/// read once, page by page.
extension SMBConnection {
    enum DirectoryClass: UInt8 {
        case directory = 1, fullDirectory = 2, bothDirectory = 3, names = 12, idBothDirectory = 37, idFullDirectory = 38
    }

    enum DirectoryFlag {
        static let restartScans: UInt8 = 0x1
        static let returnSingleEntry: UInt8 = 0x2
        static let indexSpecified: UInt8 = 0x4
        static let reopen: UInt8 = 0x10
    }

    func queryDirectory(_ request: inout SMB2Request, reply: SMBReply) async throws(NTStatus) {
        let reader = request.reader
        guard try reader.u16(at: 64) == 33 else { throw .invalidParameter }
        guard let infoClass = DirectoryClass(rawValue: try reader.u8(at: 66)) else { throw .invalidInfoClass }
        let flags = try reader.u8(at: 67)
        let open = try open(request, at: 72)
        let nameOffset = Int(try reader.u16(at: 88))
        let nameLength = Int(try reader.u16(at: 90))
        let outputLength = Int(try reader.u32(at: 92))
        guard open.pipe == nil, open.isDirectory else { throw .invalidParameter }
        guard outputLength <= maxIOSize else { throw .invalidParameter }
        let pattern = nameLength == 0 ? "*" : try reader.utf16(at: nameOffset, count: nameLength)
        guard let credentials = request.session?.credentials else { throw .invalidParameter }

        if flags & (DirectoryFlag.restartScans | DirectoryFlag.reopen) != 0 || open.enumerationPattern == nil || (nameLength > 0 && pattern != open.enumerationPattern) {
            open.enumerationCookie = 0
            open.enumerationVerifier = 0
            open.enumerationDots = 0
            open.enumerationDone = false
            open.enumerationPattern = pattern
        }
        if open.enumerationDone { throw .noMoreFiles }
        let matcher = WildcardPattern(pattern)
        let single = flags & DirectoryFlag.returnSingleEntry != 0

        // Entries encoded into a scratch area first: the reply is built once its size is known.
        var entries: [(name: String, attributes: Attributes)] = []
        var budget = outputLength
        func fits(_ name: String) -> Bool {
            let size = Self.entrySize(infoClass, nameBytes: name.utf16.count * 2)
            guard size <= budget else { return false }
            budget -= (size + 7) & ~7
            return true
        }
        let startedFresh = open.enumerationDots == 0 && open.enumerationCookie == 0
        var full = false
        while open.enumerationDots < 2 && !full {
            let name = open.enumerationDots == 0 ? "." : ".."
            if matcher.matches(name) {
                let attributes = try await getattr(open.handle)
                if !fits(name) { full = true; break }
                entries.append((name, attributes))
            }
            open.enumerationDots += 1
            if single && !entries.isEmpty { full = true }
        }
        while !full {
            let listing: ReadDirResult
            do {
                listing = try await vfs.readdir(open.handle, cookie: open.enumerationCookie, verifier: open.enumerationVerifier,
                                                maxEntries: single ? 16 : 256, mask: SMBFileInfo.mask, credentials: credentials)
            } catch {
                throw NTStatus(error)
            }
            open.enumerationVerifier = listing.verifier
            for entry in listing.entries {
                if entry.name == "." || entry.name == ".." || !matcher.matches(entry.name) {
                    open.enumerationCookie = entry.cookie
                    continue
                }
                var attributes: Attributes
                if let known = entry.attributes {
                    attributes = known
                } else if let (_, looked) = try? await vfs.lookup(open.handle, name: entry.name, mask: SMBFileInfo.mask, credentials: credentials) {
                    attributes = looked
                } else {
                    open.enumerationCookie = entry.cookie
                    continue
                }
                if !attributes.valid.contains(.fileid) { attributes.fileid = entry.fileid }
                if !fits(entry.name) { full = true; break }
                entries.append((entry.name, attributes))
                open.enumerationCookie = entry.cookie
                if single { full = true; break }
            }
            if full { break }
            if listing.eof {
                open.enumerationDone = true
                break
            }
        }
        if entries.isEmpty {
            if !full {
                open.enumerationDone = true
                throw startedFresh ? .noSuchFile : .noMoreFiles
            }
            // Not even one entry fits the client's buffer.
            throw .infoLengthMismatch
        }
        let capacity = max(0, outputLength - budget) + 8
        let rows = entries
        respond(request, reply: reply, bodyCapacity: 8 + capacity) { writer in
            writer.u16(9)
            writer.u16(72)
            let lengthAt = writer.offset
            writer.u32(0)
            let start = writer.offset
            var previous = -1
            for (name, attributes) in rows {
                writer.align(8)
                if previous >= 0 { writer.patch32(UInt32(writer.offset - previous), at: previous) }
                previous = writer.offset
                Self.encodeEntry(&writer, infoClass, name: name, attributes: attributes)
            }
            writer.patch32(UInt32(writer.offset - start), at: lengthAt)
        }
    }

    /// Bytes one entry takes before alignment.
    static func entrySize(_ infoClass: DirectoryClass, nameBytes: Int) -> Int {
        switch infoClass {
        case .directory: 64 + nameBytes
        case .fullDirectory: 68 + nameBytes
        case .bothDirectory: 94 + nameBytes
        case .names: 12 + nameBytes
        case .idBothDirectory: 104 + nameBytes
        case .idFullDirectory: 80 + nameBytes
        }
    }

    static func encodeEntry(_ writer: inout SMBWriter, _ infoClass: DirectoryClass, name: String, attributes: Attributes) {
        writer.u32(0)  // NextEntryOffset, patched
        writer.u32(0)  // FileIndex
        let nameBytes = name.utf16.count * 2
        if infoClass == .names {
            writer.u32(UInt32(nameBytes))
            writer.utf16(name)
            return
        }
        SMBFileInfo.times(&writer, attributes)
        writer.u64(SMBFileInfo.endOfFile(attributes))
        writer.u64(SMBFileInfo.allocationSize(attributes))
        writer.u32(SMBFileInfo.dosAttributes(attributes))
        writer.u32(UInt32(nameBytes))
        switch infoClass {
        case .directory:
            break
        case .fullDirectory:
            writer.u32(0)  // EaSize
        case .bothDirectory:
            writer.u32(0)
            writer.u8(0)   // ShortNameLength
            writer.u8(0)
            writer.zeros(24)
        case .idBothDirectory:
            writer.u32(0)
            writer.u8(0)
            writer.u8(0)
            writer.zeros(24)
            writer.u16(0)
            writer.u64(attributes.fileid)
        case .idFullDirectory:
            writer.u32(0)
            writer.u32(0)
            writer.u64(attributes.fileid)
        case .names:
            break
        }
        writer.utf16(name)
    }
}

/// A QUERY_DIRECTORY search pattern (MS-FSA §2.1.4.4): * and ? plus the DOS forms
/// < (like *), > (like ?) and " (like .), compared without case.
struct WildcardPattern {
    private let pattern: [Character]
    let isLiteral: Bool
    private let matchesAll: Bool

    init(_ text: String) {
        pattern = Array(text.lowercased())
        isLiteral = !text.contains { "*?<>\"".contains($0) }
        matchesAll = text == "*" || text == "*.*" || text == "<.*"
    }

    func matches(_ name: String) -> Bool {
        if matchesAll { return true }
        let candidate = Array(name.lowercased())
        if isLiteral { return candidate == pattern }
        return Self.match(pattern[...], candidate[...])
    }

    private static func match(_ p: ArraySlice<Character>, _ s: ArraySlice<Character>) -> Bool {
        var pi = p.startIndex
        var si = s.startIndex
        var star: Int?
        var resume = s.startIndex
        while si < s.endIndex {
            if pi < p.endIndex {
                let c = p[pi]
                if c == "*" || c == "<" {
                    star = pi
                    resume = si
                    pi += 1
                    continue
                }
                if c == "?" || c == ">" || c == s[si] || (c == "\"" && s[si] == ".") {
                    pi += 1
                    si += 1
                    continue
                }
            }
            guard let starAt = star else { return false }
            pi = starAt + 1
            resume += 1
            si = resume
        }
        while pi < p.endIndex && (p[pi] == "*" || p[pi] == "<" || p[pi] == ">" || p[pi] == "\"") { pi += 1 }
        return pi == p.endIndex
    }
}
