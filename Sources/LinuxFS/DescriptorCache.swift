import CLinuxFS
import Runtime
import Synchronization
import VFS

/// An open file descriptor of an object inside the share, with the identity it was opened
/// as. Closed when the last reference goes, so evicting it from a cache never closes a
/// descriptor an operation is still using (its number cannot be reused under that operation).
/// The close runs on a delegation thread when the last reference drops on a loop thread
/// (closing the last descriptor of a removed file frees its blocks, which can take a while).
package final class Descriptor: @unchecked Sendable {
    package let fd: Int32
    package let type: FileType
    package let device: UInt64
    package let inode: UInt64
    private let pool: DelegationPool?
    /// False for a descriptor someone else closes (the share root's).
    private let owned: Bool

    package init(fd: Int32, type: FileType, device: UInt64, inode: UInt64, pool: DelegationPool?, owned: Bool = true) {
        self.fd = fd
        self.type = type
        self.device = device
        self.inode = inode
        self.pool = pool
        self.owned = owned
    }

    deinit {
        guard owned else { return }
        let fd = fd
        if let pool, EventLoop.current != nil {
            pool.enqueue { _ = lfs_close(fd) }
        } else {
            _ = lfs_close(fd)
        }
    }

    @inline(__always)
    package func isSameObject(as other: Descriptor) -> Bool {
        device == other.device && inode == other.inode
    }
}

/// A bounded least-recently-used map from keys to descriptors, shared by every loop and
/// delegation thread of one mount.
///
/// It is protected by one mutex (the issue allows this one shared lock): a hit is a hash
/// lookup and two list splices under it, and nothing blocks while it is held (descriptors
/// that fall out are released after the lock is dropped). At most `capacity` entries: the
/// least recently used goes when a new one arrives.
package final class DescriptorCache<Key: Hashable & Sendable>: Sendable {
    private struct Slot {
        var key: Key?
        var value: Descriptor?
        var newer = -1
        var older = -1
    }

    private struct State: ~Copyable {
        var index: [Key: Int] = [:]
        var slots: [Slot] = []
        var free: [Int] = []
        var newest = -1
        var oldest = -1

        mutating func unlink(_ slot: Int) {
            let (newer, older) = (slots[slot].newer, slots[slot].older)
            if newer >= 0 { slots[newer].older = older } else { newest = older }
            if older >= 0 { slots[older].newer = newer } else { oldest = newer }
            slots[slot].newer = -1
            slots[slot].older = -1
        }

        mutating func pushNewest(_ slot: Int) {
            slots[slot].older = newest
            slots[slot].newer = -1
            if newest >= 0 { slots[newest].newer = slot } else { oldest = slot }
            newest = slot
        }

        /// Empties a slot and returns its descriptor (for the caller to drop after unlocking).
        mutating func evict(_ slot: Int) -> Descriptor? {
            unlink(slot)
            if let key = slots[slot].key { index[key] = nil }
            let value = slots[slot].value
            slots[slot].key = nil
            slots[slot].value = nil
            free.append(slot)
            return value
        }
    }

    private let state = Mutex(State())
    package let capacity: Int

    package init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    package func lookup(_ key: Key) -> Descriptor? {
        state.withLock { s in
            guard let slot = s.index[key] else { return nil }
            if s.newest != slot {
                s.unlink(slot)
                s.pushNewest(slot)
            }
            return s.slots[slot].value
        }
    }

    /// Stores `value` under `key` and returns what the cache now holds for it: `value`, or the
    /// descriptor another thread stored first (then `value` is simply dropped by the caller).
    @discardableResult
    package func insert(_ key: Key, _ value: Descriptor) -> Descriptor {
        var dropped: Descriptor?
        let result = state.withLock { s -> Descriptor in
            if let slot = s.index[key], let existing = s.slots[slot].value { return existing }
            if s.index.count >= capacity, s.oldest >= 0 { dropped = s.evict(s.oldest) }
            let slot: Int
            if let reused = s.free.popLast() {
                slot = reused
            } else {
                s.slots.append(Slot())
                slot = s.slots.count - 1
            }
            s.slots[slot].key = key
            s.slots[slot].value = value
            s.index[key] = slot
            s.pushNewest(slot)
            return value
        }
        _ = dropped
        return result
    }

    /// Drops every entry `predicate` selects (a linear scan of at most `capacity` entries).
    /// Any cached descriptor whose key satisfies `predicate` (a scan of at most `capacity`
    /// keys; for rare operations such as COMMIT that can use whichever descriptor is open).
    package func first(where predicate: (Key) -> Bool) -> Descriptor? {
        state.withLock { s in
            for (key, slot) in s.index where predicate(key) { return s.slots[slot].value }
            return nil
        }
    }

    package func removeAll(where predicate: (Key, Descriptor) -> Bool) {
        var dropped: [Descriptor] = []
        state.withLock { s in
            for slot in s.slots.indices {
                guard let key = s.slots[slot].key, let value = s.slots[slot].value, predicate(key, value) else { continue }
                if let descriptor = s.evict(slot) { dropped.append(descriptor) }
            }
        }
        dropped.removeAll()
    }

    package func removeAll() {
        removeAll { _, _ in true }
    }

    package var count: Int { state.withLock { $0.index.count } }
}
