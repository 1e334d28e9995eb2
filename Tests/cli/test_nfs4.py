"""NFSv4.0 and 4.1 against the real binary: libnfs-utils (which speaks 4.0) for listing,
reading and small copies, and a raw COMPOUND client (nfs4_support) for writes and state."""

import hashlib
import os
import struct
import subprocess
import time

import pytest

from conftest import Server
from nfs4_support import *  # noqa: F403 (operation builders and constants)
from nfs4_support import check_stateids
from nfs4_support import NFS4, Packer, Reply, Unpacker
from nfs_support import nfs_config


@pytest.fixture(params=["memfs", "io_uring"])
def server(request, nas_bin, tmp_path):
    """The server with one mount, "data", of the module under test (memfs, or a host directory
    through io_uring), exported read-write as /memfs and read-only as /ro."""
    if request.param == "memfs":
        mount = {"module": "memfs", "path": "/"}
    else:
        directory = tmp_path / "share"
        directory.mkdir()
        directory.chmod(0o777)
        mount = {"module": request.param, "path": str(directory)}
    config, port = nfs_config(tmp_path, mounts={"data": mount}, exports={
        "/memfs": {"path": "/data"},
        "/ro": {"path": "/data", "read_only": True},
    }, nfs4_lease_seconds=3)
    running = Server(nas_bin, config, tmp_path)
    running.port = port
    yield running
    assert running.stop() == 0


def v4(port, path):
    return f"nfs://127.0.0.1{path}?version=4&nfsport={port}"


def v3(port, path):
    return f"nfs://127.0.0.1{path}?version=3&nfsport={port}&mountport={port}"


def run(*args, **kw):
    return subprocess.run(list(args), check=True, timeout=60, capture_output=True, **kw)


def test_libnfs_lists_pseudo_root_and_export(server, tmp_path):
    names = run("nfs-ls", v4(server.port, "/"), text=True).stdout.split()
    assert "memfs" in names and "ro" in names
    small = tmp_path / "hello.txt"
    small.write_text("hello over nfs4\n")
    run("nfs-cp", str(small), v3(server.port, "/memfs/hello.txt"))
    listing = run("nfs-ls", v4(server.port, "/memfs/"), text=True).stdout
    line = next(l for l in listing.splitlines() if l.endswith("hello.txt"))
    assert " 16 " in line  # size from GETATTR
    assert run("nfs-cat", v4(server.port, "/memfs/hello.txt"), text=True).stdout == "hello over nfs4\n"


def test_libnfs_lists_a_directory_of_thousands(server):
    from nfs_support import NFS, ROOT
    client = NFS(server.port)
    try:
        big = client.handle(client.nfs.mkdir(client.root, "big", mode=0o755, auth=ROOT))
        for i in range(2500):
            assert client.create(big, f"entry-{i:05d}")["status"] == 0
    finally:
        client.close()
    listing = run("nfs-ls", v4(server.port, "/memfs/big"), text=True).stdout
    names = sorted(line.split()[-1] for line in listing.splitlines() if line.strip())
    assert names == [f"entry-{i:05d}" for i in range(2500)]


def test_libnfs_reads_large_file_written_over_nfs3(server, tmp_path):
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 77))
    run("nfs-cp", str(source), v3(server.port, "/memfs/big.bin"))
    back = tmp_path / "back.bin"
    run("nfs-cp", v4(server.port, "/memfs/big.bin"), str(back))
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()


def test_libnfs_copies_small_file_in(server, tmp_path):
    source = tmp_path / "small.bin"
    source.write_bytes(os.urandom(2000))
    run("nfs-cp", str(source), v4(server.port, "/memfs/small.bin"))
    back = tmp_path / "back.bin"
    run("nfs-cp", v3(server.port, "/memfs/small.bin"), str(back))
    assert back.read_bytes() == source.read_bytes()
    # A read-only export refuses the create.
    failed = subprocess.run(["nfs-cp", str(source), v4(server.port, "/ro/x.bin")], timeout=30, capture_output=True, text=True)
    assert failed.returncode != 0 and "ROFS" in failed.stdout + failed.stderr


def test_bad_minor_version_and_illegal_op(server):
    c = NFS4(server.port)
    try:
        r = c.compound([putrootfh()], tag=b"my-tag", minor=7)
        assert r.status == MINOR_VERS_MISMATCH and r.tag == b"my-tag" and r.results == []
        r = c.compound([putrootfh(), (9999, b"")], minor=0)
        assert r.status == OP_ILLEGAL and r.statuses() == [OK, OP_ILLEGAL]
        # 4.1 without SEQUENCE first.
        r = c.compound([putrootfh()], minor=1)
        assert r.status == OP_NOT_IN_SESSION
        # The compound stops at the first failure: GETFH never runs.
        r = c.compound([putrootfh(), lookup("nope"), getfh()], minor=0)
        assert r.status == NOENT and r.statuses() == [OK, NOENT]
        r = c.compound([getfh()], minor=0)
        assert r.status == NOFILEHANDLE
    finally:
        c.close()


def test_pseudo_root_attributes_and_junction(server):
    c = NFS4(server.port, minor=0)
    try:
        bits = [A_TYPE, A_FSID, A_FILEID, A_MOUNTED_ON_FILEID]
        r = c.compound([putrootfh(), getattr_(bits), lookup("memfs"), getattr_(bits), lookup_parent := (LOOKUPP, b""), getfh()])
        assert r.status == OK, r.statuses()

        def decode(values):
            u = Unpacker(values)
            return {"type": u.u32(), "fsid": (u.u64(), u.u64()), "fileid": u.u64(), "mounted_on": u.u64()}
        root, export = decode(r[1]["values"]), decode(r[3]["values"])
        assert root["type"] == 2 and export["type"] == 2
        assert root["fsid"] != export["fsid"]  # a junction: the fsid changes
        assert export["mounted_on"] != export["fileid"]
        r2 = c.compound([putrootfh(), getfh()])
        assert r[-1]["fh"] == r2[-1]["fh"]  # LOOKUPP from the export's root is the pseudo root
    finally:
        c.close()


def test_v41_open_write_close_read_back(server):
    c = NFS4(server.port)
    try:
        c.session()
        root = c.export_fh()
        data = os.urandom(300 * 1024)
        r = c.seq_compound([putfh(root), open_("written.bin", b"owner-1", create=True), getfh()])
        assert r.status == OK, r.statuses()
        sid, fh = r[2]["stateid"], r[3]["fh"]
        r = c.seq_compound([putfh(fh), write(sid, 0, data, stable=0), commit()])
        assert r.status == OK, r.statuses()
        assert r[2]["count"] == len(data) and r[3]["verifier"] == r[2]["verifier"]
        r = c.seq_compound([putfh(fh), read(sid, 0, len(data) + 10)])
        assert r.status == OK and r[2]["data"] == data and r[2]["eof"]
        # READ not last: the data is copied into the reply, still correct.
        r = c.seq_compound([putfh(fh), read(sid, 1000, 100), getattr_([A_SIZE])])
        assert r.status == OK and r[2]["data"] == data[1000:1100]
        assert struct.unpack(">Q", r[3]["values"])[0] == len(data)
        # 4.1's current stateid (seqid 1, other zero): OPEN sets it, WRITE and CLOSE use it;
        # a PUTFH clears it.
        current = struct.pack(">I", 1) + b"\0" * 12
        r = c.seq_compound([putfh(root), open_("current.bin", b"owner-c"), write(current, 0, b"via current"), close(0, current)])
        assert r.status == OK, r.statuses()
        r = c.seq_compound([putfh(root), open_("current.bin", b"owner-c"), putfh(fh), write(current, 0, b"x")])
        assert r.statuses()[-1] == BAD_STATEID
        r = c.seq_compound([putfh(fh), close(0, sid)])
        assert r.status == OK, r.statuses()
        # The closed stateid is gone.
        r = c.seq_compound([putfh(fh), read(sid, 0, 10)])
        assert r.statuses()[-1] == BAD_STATEID
    finally:
        c.close()


def test_namespace_operations(server):
    c = NFS4(server.port)
    try:
        c.session()
        root = c.export_fh()
        r = c.seq_compound([putfh(root), create_dir("dir"), getfh(), create_dir("sub"), lookupp(), create_symlink("ln", "sub/target"), readlink()])
        assert r.status == OK, r.statuses()
        assert r[7]["link"] == b"sub/target"
        dir_fh = r[3]["fh"]
        assert c.seq_compound([putfh(root), create_dir("dir")]).status == EXIST
        # A file: write, link, rename, setattr (size and mode), verify, remove.
        r = c.seq_compound([putfh(dir_fh), open_("f", b"o"), getfh()])
        sid, f_fh = r[2]["stateid"], r[3]["fh"]
        assert c.seq_compound([putfh(f_fh), write(sid, 0, b"0123456789")]).status == OK
        r = c.seq_compound([putfh(f_fh), savefh(), putfh(dir_fh), link("f2")])
        assert r.status == OK, r.statuses()
        r = c.seq_compound([putfh(f_fh), getattr_([A_NUMLINKS])])
        assert struct.unpack(">I", r[2]["values"])[0] == 2
        r = c.seq_compound([putfh(dir_fh), savefh(), rename("f2", "renamed")])
        assert r.status == OK, r.statuses()
        r = c.seq_compound([putfh(dir_fh), lookup("renamed"), getfh()])
        assert r[3]["fh"] == f_fh
        r = c.seq_compound([putfh(f_fh), setattr(sid, mode=0o600, size=4), getattr_([A_SIZE, A_MODE])])
        assert r.status == OK, r.statuses()
        assert r[2]["attrset"] == {A_SIZE, A_MODE}
        assert struct.unpack(">QI", r[3]["values"]) == (4, 0o600)
        # VERIFY / NVERIFY compare the client's values with the server's.
        same = struct.pack(">Q", 4)
        assert c.seq_compound([putfh(f_fh), verify([A_SIZE], same)]).status == OK
        assert c.seq_compound([putfh(f_fh), verify([A_SIZE], struct.pack(">Q", 5))]).status == NOT_SAME
        assert c.seq_compound([putfh(f_fh), verify([A_SIZE], same, negate=True)]).status == SAME
        # ACCESS: root may do everything but execute a 0600 file.
        r = c.seq_compound([putfh(f_fh), access()])
        assert r[2]["access"] == 0x1 | 0x4 | 0x8
        # Downgrade to read-only: writing through the stateid is then refused.
        r = c.seq_compound([putfh(f_fh), open_downgrade(sid, 0, 1, 0)])
        assert r.status == OK, r.statuses()
        sid = r[2]["stateid"]
        assert c.seq_compound([putfh(f_fh), write(sid, 0, b"x")]).statuses()[-1] == OPENMODE
        assert c.seq_compound([putfh(f_fh), close(0, sid)]).status == OK
        assert c.seq_compound([putfh(root), remove("dir")]).status == NOTEMPTY
        for name in ("f", "renamed", "ln"):
            assert c.seq_compound([putfh(dir_fh), remove(name)]).status == OK, name
        assert c.seq_compound([putfh(dir_fh), remove("ln")]).status == NOENT
        listing = run("nfs-ls", v4(server.port, "/memfs/dir"), text=True).stdout.split()
        assert "sub" in listing and "renamed" not in listing
        # The read-only export refuses changes; the pseudo root is read-only too.
        ro = c.export_fh("ro")
        assert c.seq_compound([putfh(ro), create_dir("nope")]).statuses()[-1] == ROFS
        assert c.seq_compound([putrootfh(), create_dir("nope")]).statuses()[-1] == ROFS
    finally:
        c.close()


def test_v42_xattrs_and_seek(server):
    c = NFS4(server.port)
    try:
        c.session()
        root = c.export_fh()
        r = c.seq_compound([putfh(root), open_("attrs", b"o"), getfh()])
        sid, fh = r[2]["stateid"], r[3]["fh"]
        assert c.seq_compound([putfh(fh), write(sid, 0, b"data")]).status == OK
        # Extended attributes are minor version 2 only.
        assert c.seq_compound([putfh(fh), getxattr("color")], minor=1).statuses()[-1] == OP_ILLEGAL
        r = c.seq_compound([putfh(fh), getxattr("color")], minor=2)
        assert r.statuses()[-1] == NOXATTR
        r = c.seq_compound([putfh(fh), setxattr("color", b"blue"), setxattr("size", b"XL"), getxattr("color")], minor=2)
        assert r.status == OK, r.statuses()
        assert r[4]["value"] == b"blue"
        assert c.seq_compound([putfh(fh), setxattr("color", b"red", option=1)], minor=2).statuses()[-1] == EXIST
        r = c.seq_compound([putfh(fh), listxattrs()], minor=2)
        assert r.status == OK and r[2]["names"] == [b"color", b"size"] and r[2]["eof"]
        r = c.seq_compound([putfh(fh), listxattrs(maxcount=16 + 12)], minor=2)
        assert r[2]["names"] == [b"color"] and not r[2]["eof"] and r[2]["cookie"] == 1
        r = c.seq_compound([putfh(fh), removexattr("color"), listxattrs()], minor=2)
        assert r.status == OK and r[3]["names"] == [b"size"]
        # SEEK: data at 0, a hole at the end of the data.
        r = c.seq_compound([putfh(fh), seek(sid, 0, 0)], minor=2)
        assert r.status == OK and r[2]["offset"] == 0
        r = c.seq_compound([putfh(fh), seek(sid, 0, 1)], minor=2)
        assert r.status == OK and r[2]["offset"] == 4
    finally:
        c.close()


def test_v40_setclientid_open_confirm_and_seqid(server):
    c = NFS4(server.port, minor=0)
    try:
        clientid = c.setclientid()
        root = c.export_fh()
        r = c.compound([putfh(root), open_("v40.txt", b"owner-40", clientid=clientid, seqid=1), getfh()])
        assert r.status == OK, r.statuses()
        assert r[1]["rflags"] & 2  # OPEN4_RESULT_CONFIRM for a new owner
        sid, fh = r[1]["stateid"], r[2]["fh"]
        r = c.compound([putfh(fh), open_confirm(sid, 2)])
        assert r.status == OK, r.statuses()
        sid = r[1]["stateid"]
        # A seqid out of order is refused.
        r = c.compound([putfh(fh), close(9, sid)])
        assert r.status == BAD_SEQID
        r = c.compound([putfh(fh), close(1, sid)])
        assert r.status == BAD_SEQID
        r = c.compound([putfh(fh), write(sid, 0, b"hello v4.0"), renew(clientid)])
        assert r.status == OK, r.statuses()
        r = c.compound([putfh(fh), close(3, sid)])
        assert r.status == OK, r.statuses()
        # An unknown client id is stale.
        r = c.compound([renew(12345)])
        assert r.status == STALE_CLIENTID
    finally:
        c.close()
    assert run("nfs-cat", v4(server.port, "/memfs/v40.txt"), text=True).stdout == "hello v4.0"


def test_v40_retransmitted_seqid_gets_the_same_reply(server):
    c = NFS4(server.port, minor=0)
    try:
        clientid = c.setclientid()
        root = c.export_fh()
        ops = [putfh(root), open_("again.txt", b"owner-again", clientid=clientid, seqid=7, how=1), getfh()]
        first = c.compound(ops)
        assert first.status == OK, first.statuses()
        # The same seqid again (a retransmission): the OPEN's first answer, not EXIST.
        second = c.compound(ops)
        assert second.status == OK, second.statuses()
        assert second[1]["stateid"] == first[1]["stateid"] and second[2]["fh"] == first[2]["fh"]
        r = c.compound([putfh(first[2]["fh"]), open_confirm(first[1]["stateid"], 8)])
        assert r.status == OK, r.statuses()
        sid = r[1]["stateid"]
        r = c.compound([putfh(first[2]["fh"]), close(9, sid)])
        assert r.status == OK, r.statuses()
        again = c.compound([putfh(first[2]["fh"]), close(9, sid)])
        assert again.status == OK and again[1]["stateid"] == r[1]["stateid"]
        assert c.compound([putfh(first[2]["fh"]), close(11, sid)]).status == BAD_STATEID  # closed for good
    finally:
        c.close()


def test_bad_and_foreign_stateids(server):
    c = NFS4(server.port)
    try:
        c.session()
        root = c.export_fh()
        r = c.seq_compound([putfh(root), open_("a", b"o"), getfh()])
        sid_a, fh_a = r[2]["stateid"], r[3]["fh"]
        r = c.seq_compound([putfh(root), open_("b", b"o"), getfh()])
        fh_b = r[3]["fh"]
        forged = sid_a[:4] + os.urandom(12)
        r = c.seq_compound([putfh(fh_a), write(forged, 0, b"x")])
        assert r.statuses()[-1] == BAD_STATEID
        # A stateid used on another file.
        r = c.seq_compound([putfh(fh_b), write(sid_a, 0, b"x")])
        assert r.statuses()[-1] == BAD_STATEID
        # An older seqid.
        old = struct.pack(">I", 0) + sid_a[4:]
        r = c.seq_compound([putfh(fh_a), read(sid_a, 0, 1)])
        assert r.status == OK
        r = c.seq_compound([check_stateids([sid_a, forged])])
        assert r[1]["statuses"] == [OK, BAD_STATEID]
        assert old  # seqid 0 means "current" in 4.1, so it is accepted there
    finally:
        c.close()


def test_sequence_replay_answered_from_slot_cache(server):
    c = NFS4(server.port)
    try:
        c.session()
        root = c.export_fh()
        c.seq += 1
        ops = [sequence(c.sessionid, c.seq, 0, True), putfh(root), open_("replayed", b"owner-r", create=True, how=1)]
        first = c.raw_compound(ops)
        second = c.raw_compound(ops)  # a retransmission: same slot, same seqid
        assert first == second
        assert Unpacker(first).u32() == OK  # a GUARDED create replayed, not EXIST
        # A seqid that skips ahead is misordered; a bad slot is refused.
        r = c.compound([sequence(c.sessionid, c.seq + 5, 0)])
        assert r.status == SEQ_MISORDERED
        r = c.compound([sequence(c.sessionid, 1, 999)])
        assert r.status == BADSLOT
        # A request not cached: its retry is refused.
        c.seq += 1
        ops = [sequence(c.sessionid, c.seq, 0, False), putrootfh()]
        assert Reply(c.raw_compound(ops)).status == OK
        assert Reply(c.raw_compound(ops)).status == RETRY_UNCACHED_REP
        r = c.compound([sequence(os.urandom(16), 1, 0)])
        assert r.status == BADSESSION
    finally:
        c.close()


def test_locks_conflict_between_clients(server):
    a, b = NFS4(server.port), NFS4(server.port)
    try:
        a.session(); b.session()
        root = a.export_fh()
        r = a.seq_compound([putfh(root), open_("locked", b"oa"), getfh()])
        sid_a, fh = r[2]["stateid"], r[3]["fh"]
        r = b.seq_compound([putfh(root), open_("locked", b"ob", create=False)])
        sid_b = r[2]["stateid"]
        r = a.seq_compound([putfh(fh), lock(2, 0, 100, open_sid=sid_a, owner=b"lock-a")])
        assert r.status == OK, r.statuses()
        lsid_a = r[2]["stateid"]
        r = b.seq_compound([putfh(fh), lock(2, 50, 10, open_sid=sid_b, owner=b"lock-b")])
        assert r.status == DENIED
        assert r[2]["offset"] == 0 and r[2]["length"] == 100 and r[2]["owner"] == b"lock-a"
        r = b.seq_compound([putfh(fh), lockt(1, 0, 1, b.clientid, b"lock-b")])
        assert r.status == DENIED
        r = b.seq_compound([putfh(fh), write(sid_b, 10, b"blocked")])
        assert r.statuses()[-1] == LOCKED
        r = b.seq_compound([putfh(fh), lock(2, 100, 10, open_sid=sid_b, owner=b"lock-b")])
        assert r.status == OK, r.statuses()
        # Closing with locks held is refused; unlocking frees the range for the other client.
        r = a.seq_compound([putfh(fh), close(0, sid_a)])
        assert r.status == LOCKS_HELD
        r = a.seq_compound([putfh(fh), locku(2, 0, lsid_a, 0, 100)])
        assert r.status == OK, r.statuses()
        r = b.seq_compound([putfh(fh), lockt(2, 0, 100, b.clientid, b"lock-b")])
        assert r.status == OK
        r = a.seq_compound([putfh(fh), close(0, sid_a)])
        assert r.status == OK, r.statuses()
    finally:
        a.close(); b.close()


READ_LT, WRITE_LT = 1, 2


@pytest.mark.parametrize("held, wanted, overlap, granted", [
    (READ_LT, READ_LT, True, True),
    (READ_LT, WRITE_LT, True, False),
    (WRITE_LT, READ_LT, True, False),
    (WRITE_LT, WRITE_LT, True, False),
    (WRITE_LT, WRITE_LT, False, True),
])
def test_lock_conflict_matrix(server, held, wanted, overlap, granted):
    a, b = NFS4(server.port), NFS4(server.port)
    try:
        a.session(); b.session()
        root = a.export_fh()
        r = a.seq_compound([putfh(root), open_("matrix", b"oa"), getfh()])
        sid_a, fh = r[2]["stateid"], r[3]["fh"]
        sid_b = b.seq_compound([putfh(root), open_("matrix", b"ob", create=False)])[2]["stateid"]
        assert a.seq_compound([putfh(fh), lock(held, 0, 100, open_sid=sid_a, owner=b"la")]).status == OK
        offset = 50 if overlap else 100
        r = b.seq_compound([putfh(fh), lock(wanted, offset, 100, open_sid=sid_b, owner=b"lb")])
        assert r.status == (OK if granted else DENIED), r.statuses()
        # LOCKT answers the same without taking anything.
        r = b.seq_compound([putfh(fh), lockt(wanted, offset, 100, b.clientid, b"lb")])
        assert r.status == (OK if granted else DENIED)
        # The same owner never conflicts with itself: a's lock can grow over its own range.
        r = a.seq_compound([putfh(fh), lock(WRITE_LT if held == WRITE_LT else READ_LT, 0, 50, open_sid=sid_a, owner=b"la")])
        assert r.status == OK, r.statuses()
    finally:
        a.close(); b.close()


def test_lock_range_arguments(server):
    c = NFS4(server.port)
    try:
        c.session()
        root = c.export_fh()
        r = c.seq_compound([putfh(root), open_("ranges", b"o"), getfh()])
        sid, fh = r[2]["stateid"], r[3]["fh"]
        assert c.seq_compound([putfh(fh), lock(WRITE_LT, 0, 0, open_sid=sid, owner=b"l")]).status == INVAL
        assert c.seq_compound([putfh(fh), lock(WRITE_LT, 2 ** 63, 2 ** 63 + 5, open_sid=sid, owner=b"l")]).status == INVAL
        # All ones means "to the end of the file".
        r = c.seq_compound([putfh(fh), lock(WRITE_LT, 10, 2 ** 64 - 1, open_sid=sid, owner=b"l")])
        assert r.status == OK, r.statuses()
        # A read-only open may not take a write lock.
        r = c.seq_compound([putfh(root), open_("ranges", b"ro-owner", access=1, create=False)])
        ro = r[2]["stateid"]
        assert c.seq_compound([putfh(fh), lock(WRITE_LT, 0, 1, open_sid=ro, owner=b"l2")]).status == OPENMODE
    finally:
        c.close()


def test_share_reservations_deny_other_opens(server):
    a, b = NFS4(server.port), NFS4(server.port)
    try:
        a.session(); b.session()
        root = a.export_fh()
        r = a.seq_compound([putfh(root), open_("shared", b"oa", access=1, deny=2)])
        assert r.status == OK, r.statuses()
        r = b.seq_compound([putfh(root), open_("shared", b"ob", access=2, create=False)])
        assert r.status == SHARE_DENIED
        r = b.seq_compound([putfh(root), open_("shared", b"ob", access=1, create=False), getfh()])
        assert r.status == OK, r.statuses()
        fh = r[3]["fh"]
        # Without an open (the anonymous stateid) a write is still held off by the deny mode.
        anonymous = b"\0" * 16
        r = b.seq_compound([putfh(fh), write(anonymous, 0, b"sneaky")])
        assert r.statuses()[-1] == LOCKED
        r = b.seq_compound([putfh(fh), read(anonymous, 0, 10)])
        assert r.status == OK, r.statuses()
    finally:
        a.close(); b.close()


def test_lease_expiry_frees_state(server):
    a, b = NFS4(server.port, minor=0), NFS4(server.port)
    try:
        clientid = a.setclientid()
        root = a.export_fh()
        r = a.compound([putfh(root), open_("leased", b"oa", clientid=clientid, seqid=1, access=3, deny=3), getfh()])
        assert r.status == OK, r.statuses()
        b.session()
        r = b.seq_compound([putfh(root), open_("leased", b"ob", access=1, create=False)])
        assert r.status == SHARE_DENIED
        time.sleep(5)  # the lease is 3 s; b keeps renewing through its SEQUENCEs
        r = b.seq_compound([putfh(root), open_("leased", b"ob", access=1, create=False)])
        assert r.status == OK, r.statuses()
        r = a.compound([renew(clientid)])
        assert r.status == STALE_CLIENTID  # expired and purged: the client must set up a new id
    finally:
        a.close(); b.close()


def test_grace_period_admits_only_reclaims(nas_bin, tmp_path):
    config, port = nfs_config(tmp_path, nfs4_grace_seconds=2)
    running = Server(nas_bin, config, tmp_path)
    try:
        c = NFS4(port)
        try:
            c.session()
            root = c.export_fh()
            started = time.monotonic()
            r = c.seq_compound([putfh(root), open_("new-in-grace", b"o")])
            assert r.status == GRACE
            # A reclaim (CLAIM_PREVIOUS on the file's handle) is granted in grace. The file is
            # made over NFSv3, whose handles are the NFSv4 ones.
            from nfs_support import NFS
            v3client = NFS(port)
            try:
                v3fh = v3client.handle(v3client.create(v3client.root, "reclaimed"))
            finally:
                v3client.close()
            r = c.seq_compound([putfh(v3fh), open_(None, b"o", create=False, previous=True)])
            assert r.status == OK, r.statuses()
            time.sleep(max(0, 2.2 - (time.monotonic() - started)))
            r = c.seq_compound([putfh(root), open_("after-grace", b"o"), getfh()])
            assert r.status == OK, r.statuses()
            fh = r[3]["fh"]
            r = c.seq_compound([putfh(fh), open_(None, b"o2", create=False, previous=True)])
            assert r.status == NO_GRACE
        finally:
            c.close()
    finally:
        assert running.stop() == 0


def test_per_operation_stats_reach_the_admin_api(nas_bin, tmp_path):
    import json
    import urllib.request
    from conftest import free_port
    admin = free_port()
    config, port = nfs_config(tmp_path, admin_port=admin)
    running = Server(nas_bin, config, tmp_path)
    try:
        c = NFS4(port, minor=0)
        try:
            for _ in range(3):
                assert c.compound([putrootfh(), getfh()]).status == OK
            assert c.compound([putrootfh(), lookup("absent")]).status == NOENT
        finally:
            c.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/v1/status", timeout=10) as response:
            document = json.loads(response.read())
        nfs4 = next(p for p in document["protocols"] if p["name"] == "NFSv4")
        ops = {op["name"]: op for op in nfs4["operations"]}
        assert ops["COMPOUND"]["count"] == 4 and ops["COMPOUND"]["errors"] == 1
        assert ops["PUTROOTFH"]["count"] == 4 and ops["GETFH"]["count"] == 3
        assert ops["LOOKUP"]["count"] == 1 and ops["LOOKUP"]["errors"] == 1
    finally:
        assert running.stop() == 0
