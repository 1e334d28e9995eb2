"""NFSv3, MOUNT and portmap against real clients: libnfs-utils and pyNfsClient, plus raw RPC
for malformed input. Each test starts the real server binary on free ports."""

import hashlib
import os
import struct
import subprocess

import pytest

from conftest import Server, rss_bytes
from nfs_support import NFS, ROOT, nfs_config, null_works, raw_connection, read_record, record, rpc_call, user

NFS3_OK, NOENT, ACCES, EXIST, NOTDIR, ISDIR, ROFS, NOTEMPTY, STALE, BADHANDLE, NOT_SYNC = 0, 2, 13, 17, 20, 21, 30, 66, 70, 10001, 10002


@pytest.fixture(params=["memfs", "io_uring"])
def server(request, nas_bin, tmp_path):
    """The server with one mount, "data", of the module under test, exported four ways (the
    export clients use is still called /memfs)."""
    module = request.param
    if module == "memfs":
        mount = {"module": "memfs", "path": "/"}
    else:
        directory = tmp_path / "share"
        directory.mkdir()
        directory.chmod(0o777)  # like memfs's root, so squashed and unprivileged users may create
        mount = {"module": module, "path": str(directory)}
    config, port = nfs_config(tmp_path, mounts={"data": mount}, exports={
        "/memfs": {"path": "/data"},
        "/ro": {"path": "/data", "read_only": True},
        "/squashed": {"path": "/data", "squash": "all", "anon_uid": 4242, "anon_gid": 4242},
        "/nobody-allowed": {"path": "/data", "clients": ["10.99.0.0/16"]},
    })
    running = Server(nas_bin, config, tmp_path)
    running.port = port
    running.module = module
    yield running
    assert running.stop() == 0


def url(port, path):
    return f"nfs://127.0.0.1{path}?version=3&nfsport={port}&mountport={port}"


def test_libnfs_copy_in_and_out_with_checksums(server, tmp_path):
    source = tmp_path / "random.bin"
    source.write_bytes(os.urandom(7 * 1024 * 1024 + 123))
    subprocess.run(["nfs-cp", str(source), url(server.port, "/memfs/random.bin")], check=True, timeout=60, capture_output=True)
    back = tmp_path / "back.bin"
    subprocess.run(["nfs-cp", url(server.port, "/memfs/random.bin"), str(back)], check=True, timeout=60, capture_output=True)
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    small = tmp_path / "hello.txt"
    small.write_text("hello over nfs\n")
    subprocess.run(["nfs-cp", str(small), url(server.port, "/memfs/hello.txt")], check=True, timeout=30, capture_output=True)
    cat = subprocess.run(["nfs-cat", url(server.port, "/memfs/hello.txt")], check=True, timeout=30, capture_output=True, text=True)
    assert cat.stdout == "hello over nfs\n"


def test_libnfs_lists_a_directory_of_thousands(server):
    client = NFS(server.port)
    try:
        big = client.handle(client.nfs.mkdir(client.root, "big", mode=0o755, auth=ROOT))
        for i in range(3000):
            assert client.create(big, f"entry-{i:05d}")["status"] == NFS3_OK
    finally:
        client.close()
    listing = subprocess.run(["nfs-ls", url(server.port, "/memfs/big")], check=True, timeout=60, capture_output=True, text=True)
    names = sorted(line.split()[-1] for line in listing.stdout.splitlines() if line.strip())
    names = [n for n in names if n not in (".", "..")]
    assert names == [f"entry-{i:05d}" for i in range(3000)]


def test_guarded_setattr(server):
    client = NFS(server.port)
    try:
        file = client.handle(client.create(client.root, "guarded"))
        ctime = client.nfs.getattr(file, ROOT)["attributes"]["ctime"]
        wrong = client.nfs.setattr(file, mode=0o600, check=True, obj_ctime={"seconds": 1, "nseconds": 0}, auth=ROOT) \
            if "check" in client.nfs.setattr.__code__.co_varnames else None
        if wrong is not None:
            assert wrong["status"] == NOT_SYNC
            right = client.nfs.setattr(file, mode=0o600, check=True, obj_ctime=ctime, auth=ROOT)
            assert right["status"] == NFS3_OK
        else:
            # pyNfsClient without guard support: send SETATTR by hand.
            assert raw_setattr_guard(server.port, file, mode=0o600, ctime=(1, 0)) == NOT_SYNC
            assert raw_setattr_guard(server.port, file, mode=0o600, ctime=(ctime["seconds"], ctime["nseconds"])) == NFS3_OK
        assert client.nfs.getattr(file, ROOT)["attributes"]["mode"] == 0o600
    finally:
        client.close()


def raw_setattr_guard(port, handle, mode, ctime):
    body = struct.pack(">I", len(handle)) + handle + b"\0" * ((4 - len(handle) % 4) % 4)
    body += struct.pack(">II", 1, mode) + struct.pack(">IIIII", 0, 0, 0, 0, 0)  # uid, gid, size, atime, mtime unset
    body += struct.pack(">III", 1, ctime[0], ctime[1])
    cred = struct.pack(">I", 1) + struct.pack(">I", 4) + b"test" + struct.pack(">III", 0, 0, 0)
    with raw_connection(port) as s:
        s.sendall(record(rpc_call(7, 100003, 3, 2, body, cred_flavor=1, cred=cred)))
        reply = read_record(s)
    return struct.unpack(">I", reply[24:28])[0]


def test_exclusive_create_retry_and_conflict(server):
    client = NFS(server.port)
    try:
        first = client.create(client.root, "excl", how=2, verf=b"12345678")
        assert first["status"] == NFS3_OK
        retry = client.create(client.root, "excl", how=2, verf=b"12345678")
        assert retry["status"] == NFS3_OK
        assert client.handle(retry) == client.handle(first)
        assert client.create(client.root, "excl", how=2, verf=b"87654321")["status"] == EXIST
        assert client.create(client.root, "excl")["status"] == EXIST
    finally:
        client.close()


def test_rename_over_existing_link_symlink_readlink(server):
    client = NFS(server.port)
    try:
        a = client.handle(client.create(client.root, "a"))
        client.nfs.write(a, 0, 3, b"AAA", 2, auth=ROOT)
        b = client.handle(client.create(client.root, "b"))
        client.nfs.write(b, 0, 3, b"BBB", 2, auth=ROOT)
        assert client.nfs.rename(client.root, "a", client.root, "b", auth=ROOT)["status"] == NFS3_OK
        assert client.lookup(client.root, "a")["status"] == NOENT
        found = client.lookup(client.root, "b")
        assert found["status"] == NFS3_OK
        handle = found["resok"]["object"]["data"]
        assert client.nfs.read(handle, 0, 100, auth=ROOT)["resok"]["data"] == b"AAA"
        assert client.nfs.getattr(b, ROOT)["status"] == STALE
        link = client.nfs.link(handle, client.root, "hard", auth=ROOT)
        assert link["status"] == NFS3_OK
        assert client.nfs.getattr(handle, ROOT)["attributes"]["nlink"] == 2
        symlink = client.nfs.symlink(client.root, "sym", "b", auth=ROOT)
        assert symlink["status"] == NFS3_OK
        target = client.nfs.readlink(client.handle(symlink), auth=ROOT)
        assert target["status"] == NFS3_OK and target["resok"]["data"] == b"b"
    finally:
        client.close()


def test_readdirplus_paging(server):
    client = NFS(server.port)
    try:
        directory = client.handle(client.nfs.mkdir(client.root, "paged", mode=0o755, auth=ROOT))
        expected = {f"f{i:04d}" for i in range(500)}
        for name in expected:
            assert client.create(directory, name)["status"] == NFS3_OK
        seen, cookie, verifier, pages = [], 0, b"\0" * 8, 0
        while True:
            result = client.nfs.readdirplus(directory, cookie=cookie, cookie_verf=verifier, dircount=1024, maxcount=8192, auth=ROOT)
            assert result["status"] == NFS3_OK, result
            pages += 1
            entries = []
            node = result["resok"]["reply"]["entries"]
            while node:
                entry = node[0]
                entries.append(entry)
                node = entry["nextentry"]
            for entry in entries:
                assert entry["name_attributes"]["present"] and entry["name_handle"]["present"]
            seen += [e["name"].decode() for e in entries]
            verifier = result["resok"]["cookieverf"]
            if result["resok"]["reply"]["eof"]:
                break
            cookie = entries[-1]["cookie"]
        assert pages > 3, "maxcount did not limit the page size"
        assert sorted(seen) == sorted(expected) and len(seen) == len(expected)
    finally:
        client.close()


def test_write_commit_verifier(server):
    client = NFS(server.port)
    try:
        file = client.handle(client.create(client.root, "unstable"))
        written = client.nfs.write(file, 0, 5, b"hello", 0, auth=ROOT)
        assert written["status"] == NFS3_OK
        committed = client.nfs.commit(file, auth=ROOT)
        assert committed["status"] == NFS3_OK
        assert committed["resok"]["verf"] == written["resok"]["verf"]
        assert written["resok"]["committed"] in (0, 1, 2)
    finally:
        client.close()


def test_error_codes(server):
    client = NFS(server.port)
    try:
        assert client.lookup(client.root, "missing")["status"] == NOENT
        client.create(client.root, "dup", how=2, verf=b"00000001")
        assert client.create(client.root, "dup")["status"] == EXIST
        full = client.handle(client.nfs.mkdir(client.root, "full", mode=0o755, auth=ROOT))
        client.create(full, "inside")
        assert client.nfs.rmdir(client.root, "full", auth=ROOT)["status"] == NOTEMPTY
        assert client.nfs.remove(client.root, "full", auth=ROOT)["status"] == ISDIR
        # A forged handle (one byte changed) is stale; a truncated one too.
        forged = bytearray(client.root)
        forged[5] ^= 0x40
        assert client.nfs.getattr(bytes(forged), ROOT)["status"] == STALE
        assert client.nfs.getattr(client.root[:10], ROOT)["status"] == STALE
        assert client.nfs.getattr(b"\x01", ROOT)["status"] == BADHANDLE
        # Mode bits for AUTH_SYS users.
        secret = client.handle(client.create(client.root, "secret", how=0, mode=0o600))
        client.nfs.write(secret, 0, 1, b"x", 2, auth=ROOT)
        assert client.nfs.read(secret, 0, 10, auth=user(1000))["status"] == ACCES
    finally:
        client.close()


def test_export_options(server):
    ro = NFS(server.port, "/ro")
    try:
        assert ro.create(ro.root, "nope")["status"] == ROFS
        assert ro.nfs.getattr(ro.root, ROOT)["status"] == NFS3_OK
    finally:
        ro.close()
    squashed = NFS(server.port, "/squashed")
    try:
        created = squashed.create(squashed.root, "squashed-file")
        assert created["status"] == NFS3_OK
        attributes = created["resok"]["obj_attributes"]["attributes"]
        assert (attributes["uid"], attributes["gid"]) == (4242, 4242)
    finally:
        squashed.close()
    from pyNfsClient import Mount
    mount = Mount(host="127.0.0.1", port=server.port, timeout=10, auth=ROOT)
    mount.connect()
    try:
        assert mount.mnt("/nobody-allowed", ROOT)["status"] == 13
        assert mount.mnt("/no-such-export", ROOT)["status"] == 2
    finally:
        mount.disconnect()


def test_portmap_getport_and_dump(server):
    body = struct.pack(">IIII", 100003, 3, 6, 0)
    with raw_connection(server.port) as s:
        s.sendall(record(rpc_call(11, 100000, 2, 3, body)))
        reply = read_record(s)
        assert struct.unpack(">I", reply[24:28])[0] == server.port
        s.sendall(record(rpc_call(12, 100000, 2, 3, struct.pack(">IIII", 424242, 1, 6, 0))))
        assert struct.unpack(">I", read_record(s)[24:28])[0] == 0
        s.sendall(record(rpc_call(13, 100000, 2, 4)))
        dump = read_record(s)[24:]
        programs = set()
        while struct.unpack(">I", dump[:4])[0] == 1:
            program, version, proto, port = struct.unpack(">IIII", dump[4:20])
            programs.add((program, version, proto, port))
            dump = dump[20:]
        assert {(100003, 3, 6, server.port), (100005, 3, 6, server.port), (100000, 2, 6, server.port)} <= programs


def accept_status(reply):
    xid, mtype, rstat = struct.unpack(">III", reply[:12])
    return rstat, struct.unpack(">I", reply[12:16])[0], reply


def test_malformed_input_gets_rpc_errors_and_never_stops_the_server(server):
    port = server.port
    with raw_connection(port) as s:
        # Unknown program, wrong version, unknown procedure, garbage arguments.
        s.sendall(record(rpc_call(1, 424242, 1, 0)))
        assert struct.unpack(">IIIIII", read_record(s)[:24])[5] == 1            # PROG_UNAVAIL
        s.sendall(record(rpc_call(2, 100003, 5, 0)))
        reply = read_record(s)
        assert struct.unpack(">I", reply[20:24])[0] == 2                        # PROG_MISMATCH
        assert struct.unpack(">II", reply[24:32]) == (3, 4)                     # NFSv3 and NFSv4 share 100003
        s.sendall(record(rpc_call(3, 100003, 3, 99)))
        assert struct.unpack(">I", read_record(s)[20:24])[0] == 3               # PROC_UNAVAIL
        s.sendall(record(rpc_call(4, 100003, 3, 1, b"\xff\xff")))
        assert struct.unpack(">I", read_record(s)[20:24])[0] == 4               # GARBAGE_ARGS
        s.sendall(record(rpc_call(5, 100003, 3, 1, struct.pack(">I", 10000))))
        assert struct.unpack(">I", read_record(s)[20:24])[0] == 4               # handle length beyond the record
        # RPC version 3: denied, RPC_MISMATCH.
        s.sendall(record(rpc_call(6, 100003, 3, 0, rpc_version=3)))
        assert struct.unpack(">IIII", read_record(s)[:16])[2:] == (1, 0)
        # An unknown auth flavour: denied, AUTH_ERROR / too weak.
        s.sendall(record(rpc_call(7, 100003, 3, 0, cred_flavor=6, cred=b"abcd")))
        assert struct.unpack(">IIIII", read_record(s)[:20])[2:] == (1, 1, 5)
        # Two fragments make one record.
        call = rpc_call(8, 100003, 3, 0)
        s.sendall(record(call[:10], last=False) + record(call[10:]))
        assert struct.unpack(">I", read_record(s)[:4])[0] == 8
    # A truncated record followed by a disconnect, and an oversized record mark.
    with raw_connection(port) as s:
        s.sendall(struct.pack(">I", 0x80000000 | 1000) + b"\0" * 10)
    with raw_connection(port) as s:
        s.sendall(struct.pack(">I", 0x80000000 | 0x7FFFFFF0) + b"\0" * 64)
        assert s.recv(10) == b""                                                  # closed
    for _ in range(50):
        with raw_connection(port) as s:
            s.sendall(os.urandom(200))
    assert null_works(port)
    client = NFS(port)
    try:
        assert client.nfs.getattr(client.root, ROOT)["status"] == NFS3_OK
    finally:
        client.close()


def test_streaming_write_keeps_memory_flat(server, tmp_path):
    """A large sequential write through libnfs: RSS grows by far less than the data."""
    before = rss_bytes(server.proc.pid)
    source = tmp_path / "stream.bin"
    with open(source, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(256):
            f.write(chunk)
    subprocess.run(["nfs-cp", str(source), url(server.port, "/memfs/stream.bin")], check=True, timeout=120, capture_output=True)
    grown = rss_bytes(server.proc.pid) - before
    # memfs keeps the file itself in memory (256 MiB); beyond that, buffers must not grow.
    kept = 256 * 1024 * 1024 if server.module == "memfs" else 0
    assert grown < kept + 64 * 1024 * 1024, f"RSS grew by {grown / 1048576:.0f} MiB"


def test_duplicate_request_cache_replays_non_idempotent_replies(server):
    """A retransmitted REMOVE (same xid, even on a new connection) gets the first reply, not NOENT."""
    client = NFS(server.port)
    try:
        client.create(client.root, "once")
        root = client.root
    finally:
        client.close()

    def xdr_opaque(data):
        return struct.pack(">I", len(data)) + data + b"\0" * ((4 - len(data) % 4) % 4)

    cred = struct.pack(">I", 1) + xdr_opaque(b"test") + struct.pack(">III", 0, 0, 0)
    call = record(rpc_call(0x5151, 100003, 3, 12, xdr_opaque(root) + xdr_opaque(b"once"), cred_flavor=1, cred=cred))
    with raw_connection(server.port) as s:
        s.sendall(call)
        first = read_record(s)
    with raw_connection(server.port) as s:
        s.sendall(call)
        second = read_record(s)
    assert struct.unpack(">I", first[24:28])[0] == NFS3_OK
    assert second == first
    # A new xid really executes again, and now the file is gone.
    fresh = record(rpc_call(0x5152, 100003, 3, 12, xdr_opaque(root) + xdr_opaque(b"once"), cred_flavor=1, cred=cred))
    with raw_connection(server.port) as s:
        s.sendall(fresh)
        assert struct.unpack(">I", read_record(s)[24:28])[0] == NOENT


def test_per_procedure_statistics_reach_the_status_line(nas_bin, tmp_path):
    """NFS traffic shows up as per-protocol rates and latencies in `serve --plain`."""
    config, port = nfs_config(tmp_path)
    proc = subprocess.Popen([str(nas_bin), "serve", "--plain", "--interval", "0.3", "--config", str(config),
                             "--log-file", str(tmp_path / "log")], stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        client = NFS(port)
        try:
            seen = None
            for _ in range(40):
                for _ in range(200):
                    client.nfs.getattr(client.root, ROOT)
                line = proc.stdout.readline()
                fields = dict(f.split("=", 1) for f in line.split())
                if "nfsv3" in fields and not fields["nfsv3"].startswith("0op/s"):
                    seen = fields["nfsv3"]
                    break
        finally:
            client.close()
        assert seen is not None, "no NFSv3 rate in the status line"
        rate, p50, p99 = seen.split("/")[0], seen.split("/")[2], seen.split("/")[3]
        assert rate.endswith("op") and p50.startswith("p50:") and p50 != "p50:-" and p99.startswith("p99:")
    finally:
        proc.send_signal(15)
        assert proc.wait(timeout=15) == 0


def test_many_pipelined_calls_on_one_connection_are_all_answered(server):
    """More calls in flight than a connection accepts at once (128): reading pauses and resumes,
    and every call is answered, in a bounded memory."""
    client = NFS(server.port)
    try:
        root = client.root
    finally:
        client.close()

    def xdr_opaque(data):
        return struct.pack(">I", len(data)) + data + b"\0" * ((4 - len(data) % 4) % 4)

    cred = struct.pack(">I", 1) + xdr_opaque(b"test") + struct.pack(">III", 0, 0, 0)
    count = 2000
    burst = b"".join(record(rpc_call(10_000 + i, 100003, 3, 1, xdr_opaque(root), cred_flavor=1, cred=cred)) for i in range(count))
    import threading
    with raw_connection(server.port) as s:
        sender = threading.Thread(target=s.sendall, args=(burst,))
        sender.start()
        seen = set()
        for _ in range(count):
            reply = read_record(s)
            assert reply is not None, f"connection closed after {len(seen)} replies"
            xid, _, _, _, _, accept = struct.unpack(">IIIIII", reply[:24])
            assert accept == 0 and struct.unpack(">I", reply[24:28])[0] == NFS3_OK
            seen.add(xid)
        sender.join()
    assert seen == set(range(10_000, 10_000 + count))
