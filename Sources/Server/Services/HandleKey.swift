import Glibc
import Logging
import VFS

/// The key NFS handles are signed with. With `server.state_dir` it is kept in
/// `state_dir/handle.key` (created 0600 on first start), so handles of linux/io_uring files stay
/// valid across restarts; without it a fresh key is drawn at each start.
enum HandleKey {
    static let length = 32

    static func signer(stateDirectory: String?, logger: Logger) throws(ServerError) -> HandleSigner {
        guard let directory = stateDirectory else {
            logger.notice("server.state_dir is not set: NFS file handles will not survive a restart")
            return HandleSigner.random()
        }
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw ServerError.startup("server.state_dir: cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        let path = directory + "/handle.key"
        var fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            defer { close(fd) }
            var key = [UInt8](repeating: 0, count: length)
            let n = key.withUnsafeMutableBytes { read(fd, $0.baseAddress!, length) }
            guard n == length else { throw ServerError.startup("\(path): expected \(length) bytes, found \(max(n, 0)); remove it to draw a new key (clients then get stale handles)") }
            return HandleSigner(key: key)
        }
        guard errno == ENOENT else { throw ServerError.startup("\(path): \(String(cString: strerror(errno)))") }
        var key = [UInt8](repeating: 0, count: length)
        for i in 0..<length { key[i] = UInt8.random(in: 0...255) }
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ServerError.startup("\(path): cannot create: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = key.withUnsafeBytes { write(fd, $0.baseAddress!, length) }
        guard written == length, fsync(fd) == 0 else { throw ServerError.startup("\(path): cannot write the key: \(String(cString: strerror(errno)))") }
        logger.info("created the NFS handle key \(path)")
        return HandleSigner(key: key)
    }
}
