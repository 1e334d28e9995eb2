"""Per-protocol limits (server.nfs_max_*, nfs4_max_*, smb_max_*, s3_max_*): each set low, then
pushed past with a real client or raw protocol messages. In-flight limits make the server stop
reading a connection, never fail a request; size and open limits get the protocol's error."""

import json
import socket
import struct
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

import nfs4_support as v4
from conftest import Server, config_on_free_ports
from nfs_support import NFS, read_record, record, rpc_call
from s3_support import BUCKET, OursS3, make_client

AUTH_SYS_ROOT = struct.pack(">I", 1) + struct.pack(">I", 4) + b"test" + struct.pack(">III", 0, 0, 0)


def limited_server(nas_bin, tmp_path, **limits):
    config = config_on_free_ports(tmp_path, **limits)
    settings = json.loads(config.read_text())["server"]
    return Server(nas_bin, config, tmp_path), settings


def getattr_call(xid, handle):
    body = struct.pack(">I", len(handle)) + handle + b"\0" * ((4 - len(handle) % 4) % 4)
    return record(rpc_call(xid, 100003, 3, 1, body, cred_flavor=1, cred=AUTH_SYS_ROOT))


def test_nfs_calls_past_the_in_flight_limit_wait_instead_of_failing(nas_bin, tmp_path):
    server, settings = limited_server(nas_bin, tmp_path, nfs_max_calls_per_connection=2)
    try:
        nfs = NFS(settings["nfs_port"])
        root = nfs.root
        nfs.close()
        with socket.create_connection(("127.0.0.1", settings["nfs_port"]), timeout=20) as s:
            s.sendall(b"".join(getattr_call(7000 + i, root) for i in range(300)))
            xids = []
            for _ in range(300):
                reply = read_record(s)
                xid, mtype, reply_stat, _, _, accept, status = struct.unpack_from(">IIIIIII", reply)
                assert (mtype, reply_stat, accept, status) == (1, 0, 0, 0)
                xids.append(xid)
            assert sorted(xids) == list(range(7000, 7300))
    finally:
        assert server.stop() == 0


def test_nfs_record_over_the_size_limit_closes_only_that_connection(nas_bin, tmp_path):
    limit = 1114112
    server, settings = limited_server(nas_bin, tmp_path, nfs_max_record_bytes=limit)
    try:
        nfs = NFS(settings["nfs_port"])
        file = nfs.handle(nfs.create(nfs.root, "big", mode=0o644))
        # A 1 MiB WRITE (FSINFO's wtmax) fits under the smallest limit allowed.
        data = b"x" * (1 << 20)
        assert nfs.nfs.write(file, 0, len(data), data, 2)["status"] == 0
        nfs.close()
        with socket.create_connection(("127.0.0.1", settings["nfs_port"]), timeout=10) as s:
            oversized = rpc_call(1, 100003, 3, 0) + b"\0" * limit
            s.sendall(struct.pack(">I", 0x80000000 | len(oversized)) + oversized[:65536])
            s.settimeout(10)
            try:
                assert s.recv(1) == b""
            except ConnectionResetError:
                pass
        with socket.create_connection(("127.0.0.1", settings["nfs_port"]), timeout=10) as s:
            s.sendall(record(rpc_call(2, 100003, 3, 0)))
            assert struct.unpack_from(">I", read_record(s))[0] == 2
    finally:
        assert server.stop() == 0


def test_limit_keys_are_validated_with_the_key_named(nas_bin, tmp_path):
    for key, value, words in [("nfs_max_record_bytes", 65536, "1114112"), ("smb_max_io_bytes", 1 << 30, "8388608"),
                              ("s3_max_put_bytes", 0, "5368709120"), ("nfs_max_calls_per_connection", "8", "Remove the quotes")]:
        config = config_on_free_ports(tmp_path, **{key: value})
        result = subprocess.run([str(nas_bin), "config", "check", str(config)], capture_output=True, text=True, timeout=30)
        assert result.returncode != 0
        assert f"server.{key}" in result.stderr + result.stdout and words in result.stderr + result.stdout, result.stderr


def nfs4_session(port):
    c = v4.NFS4(port, minor=1)
    c.session()
    return c, c.export_fh("memfs")


def test_nfs4_opens_past_the_per_client_limit_are_refused(nas_bin, tmp_path):
    server, settings = limited_server(nas_bin, tmp_path, nfs4_max_opens_per_client=2)
    try:
        c, fh = nfs4_session(settings["nfs_port"])
        sids = []
        for name in (b"a", b"b"):
            r = c.seq_compound([v4.putfh(fh), v4.open_(name, b"owner", clientid=c.clientid)])
            assert r.status == v4.OK, r.statuses()
            sids.append(r[2]["stateid"])
        r = c.seq_compound([v4.putfh(fh), v4.open_(b"c", b"owner", clientid=c.clientid)])
        assert r.statuses()[-1] == 10008  # NFS4ERR_DELAY: 4.1 has no RESOURCE
        r = c.seq_compound([v4.putfh(fh), v4.lookup(b"a"), v4.close(0, sids[0])])
        assert r.status == v4.OK, r.statuses()
        r = c.seq_compound([v4.putfh(fh), v4.open_(b"c", b"owner", clientid=c.clientid)])
        assert r.status == v4.OK, r.statuses()
        c.close()

        old = v4.NFS4(settings["nfs_port"], minor=0)
        old.setclientid()
        for name in (b"d", b"e"):
            r = old.compound([v4.putrootfh(), v4.lookup(b"memfs"), v4.open_(name, b"o40" + name, clientid=old.clientid)], minor=0)
            assert r.status == v4.OK, r.statuses()
        r = old.compound([v4.putrootfh(), v4.lookup(b"memfs"), v4.open_(b"f", b"o40f", clientid=old.clientid)], minor=0)
        assert r.statuses()[-1] == 10018  # NFS4ERR_RESOURCE
        old.close()
    finally:
        assert server.stop() == 0


@pytest.fixture()
def smb_server(nas_bin, tmp_path):
    from conftest import free_port
    port = free_port()
    config = tmp_path / "nas.json"
    config.write_text(json.dumps({
        "server": {"bind": "127.0.0.1", "smb_port": port, "nfs_port": 0, "s3_port": 0, "admin_port": 0, "metrics_port": 0,
                   "smb_max_io_bytes": 65536, "smb_max_opens_per_session": 3, "smb_max_credits": 16},
        "mounts": {"data": {"module": "memfs", "path": "/"}},
        "shares": {"data": {"path": "/data"}},
        "users": {"alice": {"password": "secret1", "uid": 1000, "gid": 1000}},
    }))
    config.chmod(0o600)
    running = Server(nas_bin, config, tmp_path)
    running.port = port
    yield running
    assert running.stop() == 0


def test_smb_io_size_credits_and_opens_per_session(smb_server, tmp_path):
    from smbprotocol.connection import Connection
    from smbprotocol.exceptions import SMBResponseException
    from smbprotocol.open import CreateDisposition, CreateOptions, FileAttributes, ImpersonationLevel, Open, ShareAccess
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect

    conn = Connection(uuid.uuid4(), "127.0.0.1", smb_server.port)
    conn.connect()
    try:
        assert (conn.max_read_size, conn.max_write_size, conn.max_transact_size) == (65536, 65536, 65536)
        session = Session(conn, "alice", "secret1", require_encryption=False)
        session.connect()
        tree = TreeConnect(session, rf"\\127.0.0.1\data")
        tree.connect()

        def open_file(name):
            handle = Open(tree, name)
            handle.create(ImpersonationLevel.Impersonation, 0x0012019F, FileAttributes.FILE_ATTRIBUTE_NORMAL,
                          ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE, CreateDisposition.FILE_OVERWRITE_IF,
                          CreateOptions.FILE_NON_DIRECTORY_FILE)
            return handle

        held = [open_file(f"f{i}") for i in range(3)]
        with pytest.raises(SMBResponseException) as refused:
            open_file("f3")
        assert refused.value.status == 0xC000011F  # STATUS_TOO_MANY_OPENED_FILES
        held.pop().close()
        held.append(open_file("f3"))
        for _ in range(40):
            held[0].write(b"z" * 100, 0)
        # The server never lets the client hold more credits than configured.
        window = conn.sequence_window["high"] - conn.sequence_window["low"]
        assert 1 <= window <= 16, conn.sequence_window
        for handle in held:
            handle.close()
    finally:
        conn.disconnect()

    # smbclient moves a file larger than MaxReadSize/MaxWriteSize in pieces.
    payload = tmp_path / "payload.bin"
    payload.write_bytes(bytes(range(256)) * 2000)
    back = tmp_path / "back.bin"
    subprocess.run(["smbclient", "-p", str(smb_server.port), "//127.0.0.1/data", "-U", "alice%secret1", "-m", "SMB3_11",
                    "-c", f"put {payload} big.bin; get big.bin {back}"], check=True, capture_output=True, timeout=60)
    assert back.read_bytes() == payload.read_bytes()


def test_s3_put_over_the_size_limit_is_entity_too_large(nas_bin, tmp_path):
    ours = OursS3(nas_bin, tmp_path, s3_max_put_bytes=1000)
    try:
        s3 = make_client(ours.endpoint)
        s3.put_object(Bucket=BUCKET, Key="fits", Body=b"a" * 1000)
        with pytest.raises(ClientError) as refused:
            s3.put_object(Bucket=BUCKET, Key="too-big", Body=b"a" * 1001)
        assert refused.value.response["Error"]["Code"] == "EntityTooLarge"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        names = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        assert names == ["fits"]
        # max-keys is capped at 1000, as S3 does.
        assert s3.list_objects_v2(Bucket=BUCKET, MaxKeys=5000)["MaxKeys"] == 1000
    finally:
        assert ours.stop() == 0


def test_pipelined_http_requests_are_answered_in_order(nas_bin, tmp_path):
    ours = OursS3(nas_bin, tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", ours.port), timeout=20) as s:
            s.sendall(b"".join(f"GET /missing-{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(200)))
            received = b""
            while received.count(b"HTTP/1.1 ") < 200:
                chunk = s.recv(65536)
                assert chunk, f"closed after {received.count(b'HTTP/1.1 ')} responses"
                received += chunk
            assert received.count(b"HTTP/1.1 403") + received.count(b"HTTP/1.1 404") == 200
        assert ours.alive()
    finally:
        assert ours.stop() == 0


def readdir4(c, fh, cookie, verifier, maxcount):
    """One NFSv4.1 READDIR: (names, cookies, verifier, eof, size of the READDIR result)."""
    args = v4.Packer().u64(cookie).fixed(verifier).u32(maxcount).u32(maxcount).bitmap([v4.A_TYPE]).bytes()
    c.seq += 1
    raw = c.raw_compound([v4.sequence(c.sessionid, c.seq), v4.putfh(fh), (v4.READDIR, args)])
    u = v4.Unpacker(raw)
    assert u.u32() == v4.OK
    u.opaque()
    u.u32()
    u.u32(), u.u32(), u.fixed(16), u.u32(), u.u32(), u.u32(), u.u32(), u.u32()  # SEQUENCE
    u.u32(), u.u32()  # PUTFH
    start = u.offset
    assert (u.u32(), u.u32()) == (v4.READDIR, v4.OK)
    verifier = u.fixed(8)
    names, cookies = [], []
    while u.u32():
        cookies.append(u.u64())
        names.append(u.opaque())
        u.bitmap()
        u.opaque()
    eof = u.u32()
    return names, cookies, verifier, eof, u.offset - start


def test_nfs4_readdir_honours_maxcount(nas_bin, tmp_path):
    server, settings = limited_server(nas_bin, tmp_path)
    try:
        c, root = nfs4_session(settings["nfs_port"])
        r = c.seq_compound([v4.putfh(root), v4.create_dir(b"many"), v4.getfh()])
        directory = r[-1]["fh"]
        for i in range(120):
            assert c.seq_compound([v4.putfh(directory), v4.create_dir(b"entry-%03d" % i)]).status == v4.OK
        seen, cookie, verifier, pages = [], 0, b"\0" * 8, 0
        while True:
            names, cookies, verifier, eof, size = readdir4(c, directory, cookie, verifier, 1024)
            assert size <= 1024 and names
            pages += 1
            seen += names
            if eof:
                break
            cookie = cookies[-1]
        assert pages > 3 and sorted(seen) == [b"entry-%03d" % i for i in range(120)]
        c.close()
    finally:
        assert server.stop() == 0


def test_smb_query_directory_honours_the_output_buffer_length(smb_server):
    from smbprotocol.connection import Connection
    from smbprotocol.exceptions import SMBResponseException
    from smbprotocol.file_info import FileInformationClass
    from smbprotocol.open import CreateDisposition, CreateOptions, FileAttributes, ImpersonationLevel, Open, ShareAccess
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect

    conn = Connection(uuid.uuid4(), "127.0.0.1", smb_server.port)
    conn.connect()
    try:
        session = Session(conn, "alice", "secret1", require_encryption=False)
        session.connect()
        tree = TreeConnect(session, rf"\\127.0.0.1\data")
        tree.connect()

        def opened(name, directory, disposition):
            handle = Open(tree, name)
            handle.create(ImpersonationLevel.Impersonation, 0x0012019F,
                          FileAttributes.FILE_ATTRIBUTE_DIRECTORY if directory else FileAttributes.FILE_ATTRIBUTE_NORMAL,
                          ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE, disposition,
                          CreateOptions.FILE_DIRECTORY_FILE if directory else CreateOptions.FILE_NON_DIRECTORY_FILE)
            return handle

        opened("listed", True, CreateDisposition.FILE_OPEN_IF).close()
        for i in range(100):
            opened(f"listed\\file-{i:03d}.txt", False, CreateDisposition.FILE_OVERWRITE_IF).close()
        listing = opened("listed", True, CreateDisposition.FILE_OPEN)
        names, calls = [], 0
        while True:
            try:
                page = listing.query_directory("*", FileInformationClass.FILE_NAMES_INFORMATION, max_output=512)
            except SMBResponseException as error:
                assert error.status == 0x80000006  # STATUS_NO_MORE_FILES
                break
            calls += 1
            # FILE_NAMES_INFORMATION: 12 bytes and the name, 8-byte aligned, all within 512 bytes.
            assert sum((12 + len(e["file_name"].get_value()) + 7) & ~7 for e in page) <= 512 + 7
            names += [e["file_name"].get_value().decode("utf-16-le") for e in page]
        listing.close()
        assert calls > 5
        assert sorted(n for n in names if n not in (".", "..")) == [f"file-{i:03d}.txt" for i in range(100)]
    finally:
        conn.disconnect()


def test_slow_readers_cannot_grow_memory_past_the_in_flight_limit(nas_bin, tmp_path):
    """30 clients each pipeline 64 READs of 1 MiB (from a host file, so every reply is a real
    buffer) and never read a byte: each connection holds at most nfs_max_calls_per_connection
    replies plus the send queue limit, so RSS stays bounded and new clients are served."""
    from conftest import rss_bytes
    from nfs_support import nfs_config
    share = tmp_path / "share"
    share.mkdir()
    (share / "big.bin").write_bytes(bytes(range(256)) * 4096 * 16)  # 16 MiB
    config, port = nfs_config(tmp_path, mounts={"data": {"module": "io_uring", "path": str(share)}},
                              nfs_max_calls_per_connection=4)
    server = Server(nas_bin, config, tmp_path)
    slow = []
    try:
        nfs = NFS(port, "/data")
        handle = nfs.lookup(nfs.root, "big.bin")["resok"]["object"]["data"]
        nfs.close()
        padded = struct.pack(">I", len(handle)) + handle + b"\0" * ((4 - len(handle) % 4) % 4)
        before = rss_bytes(server.proc.pid)
        for client in range(30):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            calls = [record(rpc_call(i, 100003, 3, 6, padded + struct.pack(">QI", (i % 16) << 20, 1 << 20),
                                     cred_flavor=1, cred=AUTH_SYS_ROOT)) for i in range(64)]
            s.sendall(b"".join(calls))
            slow.append(s)
        import time
        time.sleep(3)
        grown = rss_bytes(server.proc.pid) - before
        # 30 × (4 replies of 1 MiB + 4 MiB send queue) = 240 MiB at worst; without the limit
        # (128 calls) it would be 30 × 64 MiB.
        assert grown < 300 << 20, f"RSS grew by {grown >> 20} MiB"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(record(rpc_call(99, 100003, 3, 0)))
            assert struct.unpack_from(">I", read_record(s))[0] == 99
    finally:
        for s in slow:
            s.close()
        assert server.stop() == 0
