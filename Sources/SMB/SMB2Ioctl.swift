import Glibc
import VFS

/// IOCTL (MS-SMB2 §3.3.5.15): FSCTL_VALIDATE_NEGOTIATE_INFO (3.0 and 3.0.2 clients check
/// that nobody altered the negotiation), FSCTL_PIPE_TRANSCEIVE (DCE/RPC on IPC$ pipes),
/// server-side copy (FSCTL_SRV_REQUEST_RESUME_KEY, FSCTL_SRV_COPYCHUNK[_WRITE], in
/// SMB2CopyChunk.swift), and clean errors for the rest.
extension SMBConnection {
    enum ControlCode {
        static let validateNegotiate: UInt32 = 0x0014_0204
        static let pipeTransceive: UInt32 = 0x0011_C017
        static let pipeWait: UInt32 = 0x0011_0018
        static let queryNetworkInterfaces: UInt32 = 0x0014_01FC
        static let dfsGetReferrals: UInt32 = 0x0006_0194
        static let dfsGetReferralsEx: UInt32 = 0x0006_01B0
        static let createOrGetObjectID: UInt32 = 0x0009_00C0
        static let getObjectID: UInt32 = 0x0009_009C
        static let requestResumeKey: UInt32 = 0x0014_0078
        static let copyChunk: UInt32 = 0x0014_40F2
        static let copyChunkWrite: UInt32 = 0x0014_80F2
        static let getCompression: UInt32 = 0x0009_003C
        static let setCompression: UInt32 = 0x0009_C040
    }

    func ioctl(_ request: inout SMB2Request, reply: SMBReply) async throws(NTStatus) {
        let reader = request.reader
        guard try reader.u16(at: 64) == 57 else { throw .invalidParameter }
        let code = try reader.u32(at: 68)
        let inputOffset = Int(try reader.u32(at: 88))
        let inputCount = Int(try reader.u32(at: 92))
        let maxOutput = Int(try reader.u32(at: 108))
        let flags = try reader.u32(at: 112)
        let input = inputCount == 0 ? UnsafeRawBufferPointer(start: nil, count: 0) : try reader.slice(at: inputOffset, count: inputCount)
        guard inputCount <= maxIOSize, maxOutput <= maxIOSize else { throw .invalidParameter }
        let fileIDBytes = Array(try reader.slice(at: 72, count: 16))

        switch code {
        case ControlCode.validateNegotiate:
            guard flags & 0x1 != 0 else { throw .notSupported }
            try validateNegotiate(&request, reply: reply, input: SMBReader(input), fileID: fileIDBytes)
        case ControlCode.pipeTransceive:
            let open = try open(request, at: 72)
            guard let pipe = open.pipe else { throw .invalidDeviceRequest }
            try pipe.write(input, connection: self)
            let output = pipe.read(maximum: maxOutput)
            let status: NTStatus = pipe.pending > 0 ? .bufferOverflow : .success
            respondIoctl(request, reply: reply, status: status, code: code, fileID: fileIDBytes, output: output)
        case ControlCode.dfsGetReferrals, ControlCode.dfsGetReferralsEx:
            throw .notFound
        case ControlCode.createOrGetObjectID, ControlCode.getObjectID:
            // The object ID is the file's id; the rest of FILE_OBJECTID_BUFFER is zero.
            let open = try open(request, at: 72)
            guard open.pipe == nil else { throw .invalidDeviceRequest }
            let attributes = try await getattr(open.handle)
            let output = Bytes.le64(attributes.fileid) + Bytes.le64(UInt64(open.handle.mountID)) + [UInt8](repeating: 0, count: 48)
            guard maxOutput >= output.count else { throw .bufferTooSmall }
            respondIoctl(request, reply: reply, code: code, fileID: fileIDBytes, output: output)
        case ControlCode.requestResumeKey:
            let open = try open(request, at: 72)
            guard open.pipe == nil, !open.isDirectory else { throw .invalidDeviceRequest }
            // SRV_REQUEST_RESUME_KEY (MS-SMB2 §2.2.32.3): the key, then no context.
            let output = resumeKey(open) + [UInt8](repeating: 0, count: 8)
            guard maxOutput >= output.count else { throw .bufferTooSmall }
            respondIoctl(request, reply: reply, code: code, fileID: fileIDBytes, output: output)
        case ControlCode.copyChunk, ControlCode.copyChunkWrite:
            let target = try open(request, at: 72)
            let (status, output) = try await copyChunks(into: target, input: SMBReader(input), maxOutput: maxOutput,
                                                        readsTarget: code == ControlCode.copyChunk, credentials: request.session?.credentials)
            respondIoctl(request, reply: reply, status: status, code: code, fileID: fileIDBytes, output: output)
        case ControlCode.getCompression:
            // No file is compressed: COMPRESSION_FORMAT_NONE (MS-FSCC §2.3.9).
            let open = try open(request, at: 72)
            guard open.pipe == nil else { throw .invalidDeviceRequest }
            guard maxOutput >= 2 else { throw .bufferTooSmall }
            respondIoctl(request, reply: reply, code: code, fileID: fileIDBytes, output: [0, 0])
        case ControlCode.setCompression:
            // Turning compression off is all there is to do; turning it on is not supported.
            let open = try open(request, at: 72)
            guard open.pipe == nil, inputCount >= 2 else { throw .invalidParameter }
            guard try SMBReader(input).u16(at: 0) == 0 else { throw .notSupported }
            respondIoctl(request, reply: reply, code: code, fileID: fileIDBytes, output: [])
        case ControlCode.queryNetworkInterfaces, ControlCode.pipeWait:
            throw .notSupported
        default:
            // A handle that names nothing is the first thing wrong with the request.
            _ = try open(request, at: 72)
            if let tree = request.tree, tree.isIPC { throw .notSupported }
            throw .invalidDeviceRequest
        }
    }

    func respondIoctl(_ request: SMB2Request, reply: SMBReply, status: NTStatus = .success, code: UInt32, fileID: [UInt8], output: [UInt8]) {
        respond(request, reply: reply, status: status, bodyCapacity: 48 + output.count) { writer in
            writer.u16(49)
            writer.u16(0)
            writer.u32(code)
            writer.bytes(fileID)
            writer.u32(112)  // input offset (no input echoed)
            writer.u32(0)
            writer.u32(112)
            writer.u32(UInt32(output.count))
            writer.u32(0)
            writer.u32(0)
            writer.bytes(output)
        }
    }

    /// MS-SMB2 §3.3.5.15.12: what the client says it sent must match what this connection
    /// received, or the connection is dropped (someone tampered with NEGOTIATE).
    private func validateNegotiate(_ request: inout SMB2Request, reply: SMBReply, input: SMBReader, fileID: [UInt8]) throws(NTStatus) {
        guard let dialect, input.bytes.count >= 24 else { throw .invalidParameter }
        let capabilities = try input.u32(at: 0)
        let guid = Array(try input.slice(at: 4, count: 16))
        let securityMode = try input.u16(at: 20)
        let count = Int(try input.u16(at: 22))
        guard count >= 1, count <= 64 else { throw .invalidParameter }
        var offered: [UInt16] = []
        for index in 0..<count { offered.append(try input.u16(at: 24 + 2 * index)) }
        let highest = SMB2Dialect.allCases.reversed().first { offered.contains($0.rawValue) }
        guard capabilities == clientCapabilities, guid == clientGUID, securityMode == clientSecurityMode, highest == dialect else {
            connection.close(error: EPROTO)
            throw .accessDenied
        }
        var output = Bytes.le32(serverCapabilities) + server.guid
        output += Bytes.le16(serverSecurityMode) + Bytes.le16(dialect.rawValue)
        request.forceSign = true
        respondIoctl(request, reply: reply, code: ControlCode.validateNegotiate, fileID: fileID, output: output)
    }
}
