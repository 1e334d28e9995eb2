extension VirtualFileSystem {
    /// Recalls the leases on the file `name` in `directory` before it is removed, renamed or
    /// replaced by a protocol without opens (NFSv3 REMOVE and RENAME, an S3 PUT): see
    /// `FileStateTable.recallLeases`. Nothing is looked up while no file has a lease.
    public func recallLeases(in directory: FileHandle, name: String, credentials: Credentials) async {
        guard fileStates.anyLeases, let (file, _) = try? await lookup(directory, name: name, mask: [], credentials: credentials) else { return }
        await fileStates.recallLeases(file)
    }
}
