"""One namespace, every protocol: what S3 writes, SMB and NFSv3 read byte for byte, and what SMB
writes, S3 lists with the right size and ETag (issue 7's cross-protocol evidence, SMB half)."""

import hashlib
import json
import os
import subprocess

import pytest

from conftest import Server, free_port
from s3_support import make_client


@pytest.fixture
def server(nas_bin, tmp_path):
    config = {
        "server": {"bind": "127.0.0.1", "nfs_port": free_port(), "smb_port": free_port(), "s3_port": free_port(),
                   "admin_port": 0, "metrics_port": 0},
        "mounts": {"memfs": {"module": "memfs", "path": "/"}},
        "shares": {"files": {"path": "/memfs"}},
        "buckets": {"files": {"path": "/memfs"}},
        "users": {"nas": {"password": "naspassword", "uid": 1000, "gid": 1000,
                          "s3_access_key": "nasaccesskey", "s3_secret_key": "nassecretkey123"}},
    }
    path = tmp_path / "nas.json"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    running = Server(nas_bin, path, tmp_path)
    running.settings = config["server"]
    yield running
    assert running.stop() == 0


def smbclient(server, commands, cwd):
    result = subprocess.run(["smbclient", "-p", str(server.settings["smb_port"]), "//127.0.0.1/files", "-U", "nas%naspassword",
                             "-m", "SMB3_11", "-c", commands], capture_output=True, text=True, cwd=cwd, timeout=60)
    assert result.returncode == 0 and "NT_STATUS" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result.stdout


def test_s3_and_smb_see_the_same_bytes(server, tmp_path):
    client = make_client(f"http://127.0.0.1:{server.settings['s3_port']}")
    data = os.urandom(3 * 1024 * 1024 + 17)
    client.put_object(Bucket="files", Key="cross/from-s3.bin", Body=data)
    smbclient(server, "cd cross; get from-s3.bin back.bin", cwd=tmp_path)
    assert hashlib.sha256((tmp_path / "back.bin").read_bytes()).digest() == hashlib.sha256(data).digest()

    written = os.urandom(1024 * 1024 + 4321)
    (tmp_path / "up.bin").write_bytes(written)
    smbclient(server, "cd cross; put up.bin from-smb.bin", cwd=tmp_path)
    listed = client.list_objects_v2(Bucket="files", Prefix="cross/")["Contents"]
    found = {o["Key"]: (o["Size"], o["ETag"]) for o in listed}
    assert found["cross/from-smb.bin"] == (len(written), f'"{hashlib.md5(written).hexdigest()}"')
    assert client.get_object(Bucket="files", Key="cross/from-smb.bin")["Body"].read() == written
    # A delete over SMB is gone from S3 at once.
    smbclient(server, "cd cross; rm from-s3.bin", cwd=tmp_path)
    assert [o["Key"] for o in client.list_objects_v2(Bucket="files", Prefix="cross/")["Contents"]] == ["cross/from-smb.bin"]


# Shared state across protocols: SMB share modes, byte-range locks and oplocks live in the
# VFS's per-file state table next to NFSv4's, so each protocol sees the other's (issues 5, 6).

import struct
import threading
import uuid

from nfs4_support import DENIED, LOCKED, NFS4, OK, SHARE_DENIED
from nfs4_support import close as nfs4_close
from nfs4_support import getfh, locku, putfh
from nfs4_support import lock as nfs4_lock
from nfs4_support import open_ as nfs4_open
from nfs4_support import read as nfs4_read
from nfs4_support import write as nfs4_write
from nfs_support import NFS, ROOT

NFS4ERR_DELAY = 10008
READ_LT, WRITE_LT = 1, 2
STATUS_SHARING_VIOLATION = 0xC0000043
STATUS_LOCK_NOT_GRANTED = 0xC0000055
STATUS_FILE_LOCK_CONFLICT = 0xC0000054
GENERIC_READ, GENERIC_WRITE = 0x80000000, 0x40000000
SHARE_READ, SHARE_WRITE, SHARE_DELETE = 1, 2, 4
OPLOCK_NONE, OPLOCK_LEVEL_II, OPLOCK_EXCLUSIVE, OPLOCK_BATCH, OPLOCK_LEASE = 0, 1, 8, 9, 0xFF
LEASE_R, LEASE_H, LEASE_W = 1, 2, 4
BREAK_MESSAGE_ID = 0xFFFFFFFFFFFFFFFF


@pytest.fixture(params=["memfs", "io_uring"])
def shared(request, nas_bin, tmp_path):
    """One mount, "data" (memfs, or a host directory through io_uring), shared over SMB as
    "files" and exported over NFS as /memfs."""
    if request.param == "memfs":
        mount = {"module": "memfs", "path": "/"}
    else:
        directory = tmp_path / "share"
        directory.mkdir()
        directory.chmod(0o777)
        mount = {"module": "io_uring", "path": str(directory)}
    settings = {"bind": "127.0.0.1", "nfs_port": free_port(), "smb_port": free_port(), "s3_port": 0, "admin_port": 0, "metrics_port": 0}
    config = {
        "server": settings,
        "mounts": {"data": mount},
        "shares": {"files": {"path": "/data"}},
        "exports": {"/memfs": {"path": "/data"}},
        "users": {"nas": {"password": "naspassword", "uid": 1000, "gid": 1000}},
    }
    path = tmp_path / "nas.json"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    running = Server(nas_bin, path, tmp_path)
    running.settings = settings
    yield running
    assert running.stop() == 0


class SMB:
    """One smbprotocol connection, session and tree on the "files" share, which also catches
    oplock break notifications (smbprotocol has no handler for them: it would drop the
    connection on the unknown MessageId 0xFFFFFFFFFFFFFFFF)."""

    def __init__(self, port):
        from smbprotocol.connection import Connection, Request
        from smbprotocol.header import SMB2HeaderRequest
        from smbprotocol.session import Session
        from smbprotocol.tree import TreeConnect
        self.conn = Connection(uuid.uuid4(), "127.0.0.1", port)
        self.conn.connect()
        self.session = Session(self.conn, "nas", "naspassword", require_encryption=False)
        self.session.connect()
        self.tree = TreeConnect(self.session, r"\\127.0.0.1\files")
        self.tree.connect()
        self.breaks = Request(SMB2HeaderRequest(), None, self.conn, self.session.session_id)
        self.conn.outstanding_requests[BREAK_MESSAGE_ID] = self.breaks

    def open(self, name, access, share, disposition=None, oplock=OPLOCK_NONE):
        from smbprotocol.open import CreateDisposition, CreateOptions, FileAttributes, ImpersonationLevel, Open
        handle = Open(self.tree, name)
        handle.create(ImpersonationLevel.Impersonation, access, FileAttributes.FILE_ATTRIBUTE_NORMAL, share,
                      CreateDisposition.FILE_OPEN_IF if disposition is None else disposition, CreateOptions.FILE_NON_DIRECTORY_FILE,
                      oplock_level=oplock)
        return handle

    def status_of(self, call):
        """The NTSTATUS a call fails with (0 when it succeeds)."""
        from smbprotocol.exceptions import SMBResponseException
        try:
            call()
        except SMBResponseException as error:
            return error.status
        return 0

    def lock(self, handle, offset, length, flags):
        from smbprotocol.open import SMB2LockElement
        element = SMB2LockElement()
        element["offset"] = offset
        element["length"] = length
        element["flags"] = flags
        handle.lock([element])

    def next_break(self, timeout=10):
        """The next oplock break notification: (new level, FileId)."""
        assert self.breaks.response_event.wait(timeout), "no oplock break arrived"
        data = self.breaks.response["data"].get_value()
        self.breaks.response_event.clear()
        return data[2], data[8:24]

    def no_break(self, wait=0.5):
        return not self.breaks.response_event.wait(wait)

    def acknowledge(self, handle, level):
        ack = OplockBreakAck(level, handle.file_id)
        request = self.conn.send(ack, sid=self.session.session_id, tid=self.tree.tree_connect_id)
        response = self.conn.receive(request)
        return response["data"].get_value()[2]

    def open_leased(self, name, access, share, key, state):
        """An open asking for an SMB2 lease (v1 RqLs context) with `key`; returns the open and
        the lease state granted."""
        from smbprotocol.create_contexts import CreateContextName, SMB2CreateContextRequest, SMB2CreateRequestLease
        from smbprotocol.open import CreateDisposition, CreateOptions, FileAttributes, ImpersonationLevel, Open
        lease = SMB2CreateRequestLease()
        lease["lease_key"] = key
        lease["lease_state"] = state
        context = SMB2CreateContextRequest()
        context["buffer_name"] = CreateContextName.SMB2_CREATE_REQUEST_LEASE
        context["buffer_data"] = lease
        handle = Open(self.tree, name)
        responses = handle.create(ImpersonationLevel.Impersonation, access, FileAttributes.FILE_ATTRIBUTE_NORMAL, share,
                                  CreateDisposition.FILE_OPEN_IF, CreateOptions.FILE_NON_DIRECTORY_FILE,
                                  create_contexts=[context], oplock_level=OPLOCK_LEASE)
        granted = [r for r in responses or [] if hasattr(r, "fields") and "lease_state" in r.fields]
        return handle, (granted[0]["lease_state"].get_value() if granted else None)

    def next_lease_break(self, timeout=10):
        """The next lease break notification: (ack required, key, current state, new state)."""
        assert self.breaks.response_event.wait(timeout), "no lease break arrived"
        data = self.breaks.response["data"].get_value()
        self.breaks.response_event.clear()
        assert struct.unpack_from("<H", data)[0] == 44, data
        flags, key, current, new = struct.unpack_from("<I16sII", data, 4)
        return bool(flags & 1), key, current, new

    def acknowledge_lease(self, key, state):
        ack = LeaseBreakAck(key, state)
        request = self.conn.send(ack, sid=self.session.session_id, tid=self.tree.tree_connect_id)
        response = self.conn.receive(request)
        return struct.unpack_from("<I", response["data"].get_value(), 24)[0]

    def close(self):
        self.conn.disconnect(True)


class LeaseBreakAck:
    """SMB2 lease break acknowledgment (MS-SMB2 §2.2.24.2)."""

    COMMAND = 0x12

    def __init__(self, key, state):
        self.key, self.state = key, state

    def pack(self):
        return struct.pack("<HHI", 36, 0, 0) + self.key + struct.pack("<IQ", self.state, 0)

    def __len__(self):
        return 36


class OplockBreakAck:
    """SMB2 OPLOCK_BREAK acknowledgment (MS-SMB2 §2.2.24.1), as smbprotocol's send() wants it."""

    COMMAND = 0x12

    def __init__(self, level, file_id):
        self.level, self.file_id = level, file_id

    def pack(self):
        return struct.pack("<HBBI", 24, self.level, 0, 0) + self.file_id

    def __len__(self):
        return 24


def nfs4_client(server):
    client = NFS4(server.settings["nfs_port"])
    client.session()
    return client, client.export_fh()


def test_smb_deny_write_refuses_an_nfs4_write_open_until_closed(shared):
    smb = SMB(shared.settings["smb_port"])
    nfs, root = nfs4_client(shared)
    try:
        handle = smb.open("deny-write.txt", GENERIC_READ | GENERIC_WRITE, SHARE_READ)
        handle.write(b"written over SMB")
        r = nfs.seq_compound([putfh(root), nfs4_open("deny-write.txt", b"writer", access=2, create=False)])
        assert r.statuses()[-1] == SHARE_DENIED
        # Reading is shared: an NFSv4 reader gets in and sees the SMB client's bytes.
        r = nfs.seq_compound([putfh(root), nfs4_open("deny-write.txt", b"reader", access=1, create=False), getfh()])
        assert r.status == OK, r.statuses()
        sid, fh = r[2]["stateid"], r[3]["fh"]
        assert nfs.seq_compound([putfh(fh), nfs4_read(sid, 0, 100)])[2]["data"] == b"written over SMB"
        assert nfs.seq_compound([putfh(fh), nfs4_close(0, sid)]).status == OK
        handle.close()
        r = nfs.seq_compound([putfh(root), nfs4_open("deny-write.txt", b"writer", access=2, create=False)])
        assert r.status == OK, r.statuses()
    finally:
        nfs.close()
        smb.close()


def test_nfs4_deny_write_refuses_an_smb_write_open(shared):
    smb = SMB(shared.settings["smb_port"])
    nfs, root = nfs4_client(shared)
    try:
        smb.open("nfs-deny.txt", GENERIC_READ | GENERIC_WRITE, SHARE_READ | SHARE_WRITE).close()
        r = nfs.seq_compound([putfh(root), nfs4_open("nfs-deny.txt", b"owner", access=1, deny=2, create=False), getfh()])
        assert r.status == OK, r.statuses()
        sid, fh = r[2]["stateid"], r[3]["fh"]
        assert smb.status_of(lambda: smb.open("nfs-deny.txt", GENERIC_WRITE, SHARE_READ | SHARE_WRITE)) == STATUS_SHARING_VIOLATION
        # A reader that shares reading and writing coexists with the NFSv4 open.
        reader = smb.open("nfs-deny.txt", GENERIC_READ, SHARE_READ | SHARE_WRITE)
        reader.close()
        # An SMB open that would deny the NFSv4 open's reading is refused too.
        assert smb.status_of(lambda: smb.open("nfs-deny.txt", GENERIC_READ, SHARE_WRITE)) == STATUS_SHARING_VIOLATION
        assert nfs.seq_compound([putfh(fh), nfs4_close(0, sid)]).status == OK
        smb.open("nfs-deny.txt", GENERIC_WRITE, SHARE_READ | SHARE_WRITE).close()
    finally:
        nfs.close()
        smb.close()


def test_byte_range_locks_conflict_across_smb_and_nfs4(shared):
    from smbprotocol.open import LockFlags
    exclusive = LockFlags.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | LockFlags.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
    smb = SMB(shared.settings["smb_port"])
    nfs, root = nfs4_client(shared)
    try:
        handle = smb.open("locked.bin", GENERIC_READ | GENERIC_WRITE, SHARE_READ | SHARE_WRITE)
        handle.write(b"\0" * 200)
        r = nfs.seq_compound([putfh(root), nfs4_open("locked.bin", b"owner", access=3, create=False), getfh()])
        assert r.status == OK, r.statuses()
        sid, fh = r[2]["stateid"], r[3]["fh"]

        # SMB holds [0, 100) exclusively: NFSv4 LOCK, WRITE and READ there are refused.
        smb.lock(handle, 0, 100, exclusive)
        r = nfs.seq_compound([putfh(fh), nfs4_lock(WRITE_LT, 50, 10, open_sid=sid, owner=b"nfs-lock")])
        assert r.statuses()[-1] == DENIED
        assert r[2]["offset"] == 0 and r[2]["length"] == 100
        assert nfs.seq_compound([putfh(fh), nfs4_write(sid, 10, b"blocked")]).statuses()[-1] == LOCKED
        assert nfs.seq_compound([putfh(fh), nfs4_read(sid, 10, 10)]).statuses()[-1] == LOCKED
        # Past the lock, NFSv4 goes ahead.
        assert nfs.seq_compound([putfh(fh), nfs4_write(sid, 150, b"free")]).status == OK
        smb.lock(handle, 0, 100, LockFlags.SMB2_LOCKFLAG_UNLOCK)

        # Now NFSv4 holds [0, 100): SMB LOCK, WRITE and READ there are refused.
        r = nfs.seq_compound([putfh(fh), nfs4_lock(WRITE_LT, 0, 100, open_sid=sid, owner=b"nfs-lock")])
        assert r.status == OK, r.statuses()
        lock_sid = r[2]["stateid"]
        assert smb.status_of(lambda: smb.lock(handle, 50, 1, exclusive)) == STATUS_LOCK_NOT_GRANTED
        assert smb.status_of(lambda: handle.write(b"x", 60)) == STATUS_FILE_LOCK_CONFLICT
        assert smb.status_of(lambda: handle.read(60, 1)) == STATUS_FILE_LOCK_CONFLICT
        assert handle.read(150, 4) == b"free"
        assert nfs.seq_compound([putfh(fh), locku(WRITE_LT, 1, lock_sid, 0, 100)]).status == OK
        smb.lock(handle, 50, 1, exclusive)
        handle.close()
        assert nfs.seq_compound([putfh(fh), nfs4_close(0, sid)]).status == OK
    finally:
        nfs.close()
        smb.close()


def test_nfs3_and_smb_see_each_others_writes(shared):
    smb = SMB(shared.settings["smb_port"])
    v3 = NFS(shared.settings["nfs_port"])
    try:
        created = v3.create(v3.root, "both.txt", mode=0o666)
        assert created["status"] == 0, created
        file = v3.handle(created)
        assert v3.nfs.write(file, 0, 15, b"from NFSv3 here", 2, auth=ROOT)["status"] == 0
        handle = smb.open("both.txt", GENERIC_READ | GENERIC_WRITE, SHARE_READ | SHARE_WRITE)
        assert handle.read(0, 100) == b"from NFSv3 here"
        handle.write(b"SMB!", 5)
        handle.close()
        assert v3.nfs.read(file, 0, 100, auth=ROOT)["resok"]["data"] == b"from SMB!3 here"
    finally:
        v3.close()
        smb.close()


def test_other_protocols_break_smb_oplocks(shared):
    smb = SMB(shared.settings["smb_port"])
    nfs, root = nfs4_client(shared)
    v3 = NFS(shared.settings["nfs_port"])
    try:
        # A batch oplock: an NFSv4 OPEN must wait (NFS4ERR_DELAY) until the SMB client has
        # given up write caching.
        handle = smb.open("oplocked.txt", GENERIC_READ | GENERIC_WRITE, SHARE_READ | SHARE_WRITE | SHARE_DELETE, oplock=OPLOCK_BATCH)
        assert handle.oplock_level == OPLOCK_BATCH
        handle.write(b"cached by SMB")
        r = nfs.seq_compound([putfh(root), nfs4_open("oplocked.txt", b"owner", access=1, create=False)])
        assert r.statuses()[-1] == NFS4ERR_DELAY
        assert smb.next_break() == (OPLOCK_LEVEL_II, handle.file_id)
        assert smb.acknowledge(handle, OPLOCK_LEVEL_II) == OPLOCK_LEVEL_II
        r = nfs.seq_compound([putfh(root), nfs4_open("oplocked.txt", b"owner", access=3, create=False), getfh()])
        assert r.status == OK, r.statuses()
        sid, fh = r[2]["stateid"], r[3]["fh"]
        # Opening for writing took the remaining level II oplock (no acknowledgement needed).
        assert smb.next_break() == (OPLOCK_NONE, handle.file_id)
        assert nfs.seq_compound([putfh(fh), nfs4_read(sid, 0, 100)])[2]["data"] == b"cached by SMB"
        assert nfs.seq_compound([putfh(fh), nfs4_write(sid, 0, b"CACHED")]).status == OK
        assert handle.read(0, 100) == b"CACHED by SMB"
        assert nfs.seq_compound([putfh(fh), nfs4_close(0, sid)]).status == OK
        handle.close()

        # An exclusive oplock: an NFSv3 WRITE waits for the SMB client's acknowledgement.
        handle = smb.open("v3-oplocked.txt", GENERIC_READ | GENERIC_WRITE, SHARE_READ | SHARE_WRITE, oplock=OPLOCK_EXCLUSIVE)
        assert handle.oplock_level == OPLOCK_EXCLUSIVE
        handle.write(b"exclusive data")
        file = v3.lookup(v3.root, "v3-oplocked.txt")["resok"]["object"]["data"]
        result = {}
        writer = threading.Thread(target=lambda: result.update(v3.nfs.write(file, 0, 9, b"EXCLUSIVE", 2, auth=ROOT)))
        writer.start()
        assert smb.next_break() == (OPLOCK_NONE, handle.file_id)
        writer.join(0.5)
        assert writer.is_alive(), "the NFSv3 WRITE went ahead before the oplock break was acknowledged"
        assert smb.acknowledge(handle, OPLOCK_NONE) == OPLOCK_NONE
        writer.join(10)
        assert not writer.is_alive() and result["status"] == 0, result
        assert handle.read(0, 100) == b"EXCLUSIVE data"
        handle.close()
        # With no oplock left, nothing more is sent.
        assert smb.no_break()
    finally:
        v3.close()
        nfs.close()
        smb.close()


def test_other_protocols_break_smb_leases(shared):
    smb = SMB(shared.settings["smb_port"])
    nfs, root = nfs4_client(shared)
    v3 = NFS(shared.settings["nfs_port"])
    key = uuid.uuid4().bytes
    try:
        handle, granted = smb.open_leased("leased.txt", GENERIC_READ | GENERIC_WRITE, SHARE_READ | SHARE_WRITE, key,
                                          LEASE_R | LEASE_H | LEASE_W)
        assert granted == LEASE_R | LEASE_H | LEASE_W
        handle.write(b"cached under a lease")
        # A second open with the same key keeps the lease whole (it is the same holder).
        again, granted = smb.open_leased("leased.txt", GENERIC_READ, SHARE_READ | SHARE_WRITE, key, LEASE_R | LEASE_H | LEASE_W)
        assert granted == LEASE_R | LEASE_H | LEASE_W and smb.no_break(0.2)
        again.close()
        # An NFSv4 reader takes write caching: RWH -> RH, acknowledged by the client.
        r = nfs.seq_compound([putfh(root), nfs4_open("leased.txt", b"owner", access=1, create=False)])
        assert r.statuses()[-1] == NFS4ERR_DELAY
        assert smb.next_lease_break() == (True, key, LEASE_R | LEASE_H | LEASE_W, LEASE_R | LEASE_H)
        assert smb.acknowledge_lease(key, LEASE_R | LEASE_H) == LEASE_R | LEASE_H
        r = nfs.seq_compound([putfh(root), nfs4_open("leased.txt", b"owner", access=1, create=False), getfh()])
        assert r.status == OK, r.statuses()
        sid, fh = r[2]["stateid"], r[3]["fh"]
        assert nfs.seq_compound([putfh(fh), nfs4_read(sid, 0, 100)])[2]["data"] == b"cached under a lease"
        assert nfs.seq_compound([putfh(fh), nfs4_close(0, sid)]).status == OK
        # An NFSv3 WRITE takes the rest and waits for the acknowledgement (handle caching).
        file = v3.lookup(v3.root, "leased.txt")["resok"]["object"]["data"]
        result = {}
        writer = threading.Thread(target=lambda: result.update(v3.nfs.write(file, 0, 6, b"CACHED", 2, auth=ROOT)))
        writer.start()
        assert smb.next_lease_break() == (True, key, LEASE_R | LEASE_H, 0)
        writer.join(0.5)
        assert writer.is_alive(), "the NFSv3 WRITE went ahead before the lease break was acknowledged"
        assert smb.acknowledge_lease(key, 0) == 0
        writer.join(10)
        assert not writer.is_alive() and result["status"] == 0, result
        assert handle.read(0, 100) == b"CACHED under a lease"
        handle.close()
    finally:
        v3.close()
        nfs.close()
        smb.close()
