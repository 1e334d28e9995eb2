import Runtime
import Testing

@Suite("Buffer pool and reference counts")
struct BufferTests {
    @Test("buffers go back to the pool exactly when the last reference is released")
    func referenceCounts() async throws {
        let group = try makeGroup(io: .ioUring)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let report = await loop.submit { () -> [Int] in
            let pool = loop.buffers
            let a = pool.take()
            let b = pool.take(minimumCapacity: 100_000)
            var outstanding = [pool.outstanding]          // 2
            a.retain()
            ByteSlice(buffer: a, range: 0..<10).retain()
            a.release()
            a.release()
            outstanding.append(pool.outstanding)          // still 2: one reference left on a
            outstanding.append(a.referenceCount)          // 1
            a.release()
            b.release()
            outstanding.append(pool.outstanding)          // 0
            // Reuse: the next buffer of the same class is the same memory, not a new allocation.
            let reserved = pool.reservedBytes
            let again = pool.take()
            outstanding.append(again.base == a.base ? 1 : 0)
            outstanding.append(pool.reservedBytes == reserved ? 1 : 0)
            again.release()
            outstanding.append(pool.outstanding)
            outstanding.append(b.capacity >= 100_000 ? 1 : 0)
            return outstanding
        }
        #expect(report == [2, 2, 1, 0, 1, 1, 0, 1])
    }

    @Test("a double release stops the process instead of corrupting the pool")
    func doubleRelease() async {
        await #expect(processExitsWith: .failure) {
            let group = try! makeGroup(io: .epoll)
            let loop = group.loops[0]
            await loop.submit {
                let buffer = loop.buffers.take()
                buffer.release()
                buffer.release()
            }
        }
    }

    @Test("slices check their bounds")
    func sliceBounds() async {
        await #expect(processExitsWith: .failure) {
            let group = try! makeGroup(io: .epoll)
            let loop = group.loops[0]
            await loop.submit {
                let buffer = loop.buffers.take()
                _ = ByteSlice(buffer: buffer, range: 0..<(buffer.capacity + 1))
            }
        }
    }
}
