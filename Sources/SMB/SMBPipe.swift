import VFS

/// A named pipe opened on IPC$: DCE/RPC PDUs written in (WRITE or IOCTL transceive) and
/// replies read out (READ or the same transceive). Input is bounded: a PDU must fit in
/// `maxInput`, which a legitimate srvsvc request never comes near.
final class SMBPipe {
    static let maxInput = 64 * 1024
    static let names = ["srvsvc"]

    let name: String
    private var input: [UInt8] = []
    private var output: [UInt8] = []
    private var outputStart = 0
    let rpc: DCERPCServer

    init(name: String, rpc: DCERPCServer) {
        self.name = name
        self.rpc = rpc
    }

    var pending: Int { output.count - outputStart }

    /// Accepts written bytes and answers every complete PDU.
    func write(_ data: UnsafeRawBufferPointer, connection: SMBConnection) throws(NTStatus) {
        guard input.count + data.count <= Self.maxInput else { throw .invalidParameter }
        input.append(contentsOf: data)
        while input.count >= 16 {
            let length = Int(input[8]) | Int(input[9]) << 8
            guard length >= 16 else { throw .invalidParameter }
            guard input.count >= length else { break }
            let pdu = Array(input[0..<length])
            input.removeFirst(length)
            if outputStart == output.count {
                output.removeAll(keepingCapacity: true)
                outputStart = 0
            }
            output += rpc.handle(pdu, connection: connection)
        }
    }

    /// Up to `maximum` bytes of pending replies.
    func read(maximum: Int) -> [UInt8] {
        let count = min(maximum, pending)
        defer { outputStart += count }
        return Array(output[outputStart..<(outputStart + count)])
    }
}

extension SMBConnection {
    /// CREATE on IPC$: the pipes this server answers.
    func openPipe(_ request: inout SMB2Request, reply: SMBReply, name: String, session: SMBSession, tree: SMBTree) throws(NTStatus) {
        let bare = name.split(separator: "\\").last.map { String($0).lowercased() } ?? ""
        guard SMBPipe.names.contains(bare) else { throw .objectNameNotFound }
        let open = SMBOpen(id: allocateFileID(), sessionID: session.id, treeID: tree.id, handle: FileHandle(mount: 0, words: 0),
                           parent: nil, name: bare, path: bare, isDirectory: false, access: SMBAccess.readData | SMBAccess.writeData)
        open.pipe = SMBPipe(name: bare, rpc: DCERPCServer(service: SRVSVC(server: server)))
        opens[open.id] = open
        request.producedFileID = open.id
        respond(request, reply: reply, bodyCapacity: 88) { writer in
            writer.u16(89)
            writer.u8(0)
            writer.u8(0)
            writer.u32(CreateAction.opened)
            writer.zeros(32)     // times
            writer.u64(4096)     // allocation
            writer.u64(0)        // end of file
            writer.u32(SMBFileInfo.attributeNormal)
            writer.u32(0)
            writer.u64(open.id)
            writer.u64(open.id)
            writer.u32(0)
            writer.u32(0)
        }
    }
}
