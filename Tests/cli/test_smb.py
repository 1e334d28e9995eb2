"""SMB2/SMB3 against real clients: Debian's smbclient (every dialect, signing, encryption,
share listing, guest and wrong-password cases) and PyPI smbprotocol, plus raw packets for
malformed input. Each test starts the real server binary on free ports."""

import hashlib
import json
import os
import socket
import struct
import subprocess
import uuid

import pytest

from conftest import Server, free_port

DIALECTS = ["SMB2_02", "SMB2_10", "SMB3_00", "SMB3_02", "SMB3_11"]
# NT hash of "hunter2", so the nt_hash form of a user is exercised too.
BOB_HASH = "6608e4bc7b2b7a5f77ce3573570775af"


@pytest.fixture(scope="module", params=["memfs", "io_uring"])
def server(request, nas_bin, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp(f"smb-{request.param}")
    if request.param == "memfs":
        mount = {"module": "memfs", "path": "/"}
    else:
        directory = tmp_path / "share"
        directory.mkdir()
        directory.chmod(0o777)
        mount = {"module": request.param, "path": str(directory)}
    port = free_port()
    config = tmp_path / "nas.json"
    config.write_text(json.dumps({
        "server": {"bind": "127.0.0.1", "smb_port": port, "nfs_port": 0, "s3_port": 0, "admin_port": 0, "metrics_port": 0},
        "mounts": {"data": mount},
        "shares": {
            "data": {"path": "/data"},
            "public": {"path": "/data", "guest": True},
            "secure": {"path": "/data", "encrypt": True},
            "ro": {"path": "/data", "read_only": True},
        },
        "users": {
            "alice": {"password": "secret1", "uid": 1000, "gid": 1000},
            "bob": {"nt_hash": BOB_HASH, "uid": 1001, "gid": 1001},
        },
    }))
    config.chmod(0o600)
    running = Server(nas_bin, config, tmp_path)
    running.port = port
    running.tmp = tmp_path
    yield running
    assert running.stop() == 0


def smbclient(server, share, commands, user="alice%secret1", dialect="SMB3_11", protection=None, check=True, cwd=None):
    args = ["smbclient", "-p", str(server.port), f"//127.0.0.1/{share}", "-m", dialect, "-c", commands]
    args += ["-N"] if user is None else ["-U", user]
    if protection:
        args.append(f"--client-protection={protection}")
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=cwd)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


CASES = [(d, p) for d in DIALECTS for p in ("off", "sign")] + [(d, "encrypt") for d in DIALECTS if d.startswith("SMB3")]


@pytest.mark.parametrize("dialect,protection", CASES)
def test_put_get_checksum(server, tmp_path, dialect, protection):
    source = tmp_path / "random.bin"
    source.write_bytes(os.urandom(5 * 1024 * 1024 + 321))
    name = f"big-{dialect}-{protection}.bin"
    smbclient(server, "data", f"put random.bin {name}; get {name} back.bin", dialect=dialect, protection=protection, cwd=tmp_path)
    assert hashlib.sha256((tmp_path / "back.bin").read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()


def test_encryption_refused_below_smb3(server):
    out = smbclient(server, "data", "ls", dialect="SMB2_10", protection="encrypt", check=False)
    assert "failing connect" in out or "NT_STATUS" in out


def test_directory_operations(server, tmp_path):
    (tmp_path / "a.txt").write_text("hello smb\n")
    smbclient(server, "data", "mkdir ops; cd ops; put a.txt one.txt; rename one.txt two.txt; mkdir sub; put a.txt sub\\deep.txt",
              cwd=tmp_path)
    listing = smbclient(server, "data", "cd ops; ls")
    assert "two.txt" in listing and "sub" in listing and "one.txt" not in listing
    assert "deep.txt" in smbclient(server, "data", "ls ops\\sub\\*")
    smbclient(server, "data", "cd ops; get two.txt back.txt", cwd=tmp_path)
    assert (tmp_path / "back.txt").read_text() == "hello smb\n"
    out = smbclient(server, "data", "rmdir ops\\sub", check=False)
    assert "NT_STATUS_DIRECTORY_NOT_EMPTY" in out
    smbclient(server, "data", "cd ops; rm two.txt; rm sub\\deep.txt; rmdir sub")
    assert "two.txt" not in smbclient(server, "data", "cd ops; ls")
    smbclient(server, "data", "rmdir ops")
    assert "NT_STATUS_OBJECT_NAME_NOT_FOUND" in smbclient(server, "data", "cd ops", check=False)


def test_list_shares(server):
    out = subprocess.run(["smbclient", "-L", "127.0.0.1", "-p", str(server.port), "-U", "alice%secret1"],
                         capture_output=True, text=True, timeout=60).stdout
    for share in ("data", "public", "secure", "ro", "IPC$"):
        assert share in out, out


def test_wrong_password_and_unknown_user_are_refused(server):
    assert "NT_STATUS_LOGON_FAILURE" in smbclient(server, "data", "ls", user="alice%wrong", check=False)
    assert "NT_STATUS_LOGON_FAILURE" in smbclient(server, "data", "ls", user="mallory%secret1", check=False)


def test_nt_hash_user(server):
    assert "blocks" in smbclient(server, "data", "ls", user="bob%hunter2")


def test_guest_only_where_configured(server):
    assert "blocks" in smbclient(server, "public", "ls", user=None)
    assert "NT_STATUS_ACCESS_DENIED" in smbclient(server, "data", "ls", user=None, check=False)


def test_read_only_share(server, tmp_path):
    (tmp_path / "x.txt").write_text("x")
    out = smbclient(server, "ro", "put x.txt x.txt", check=False, cwd=tmp_path)
    assert "NT_STATUS_ACCESS_DENIED" in out
    assert "blocks" in smbclient(server, "ro", "ls")


def test_encrypted_share_requires_encryption(server, tmp_path):
    assert "NT_STATUS_ACCESS_DENIED" in smbclient(server, "secure", "ls", dialect="SMB2_10", check=False)
    (tmp_path / "s.txt").write_text("sealed")
    smbclient(server, "secure", "put s.txt s.txt; get s.txt s2.txt", cwd=tmp_path)
    assert (tmp_path / "s2.txt").read_text() == "sealed"


# smbprotocol: the high-level API (signing required, encryption) and the low-level one.

def test_smbprotocol_files_signing_and_encryption(server):
    smbclient_api = pytest.importorskip("smbclient")
    for encrypt in (False, True):
        base = rf"\\127.0.0.1\data\pyfolder-{int(encrypt)}"
        smbclient_api.reset_connection_cache()
        smbclient_api.register_session("127.0.0.1", username="alice", password="secret1", port=server.port,
                                       require_signing=True, encrypt=encrypt)
        smbclient_api.mkdir(base, port=server.port)
        with smbclient_api.open_file(base + r"\f.txt", mode="w", port=server.port) as f:
            f.write("from smbprotocol")
        smbclient_api.rename(base + r"\f.txt", base + r"\g.txt", port=server.port)
        assert smbclient_api.listdir(base, port=server.port) == ["g.txt"]
        with smbclient_api.open_file(base + r"\g.txt", port=server.port) as f:
            assert f.read() == "from smbprotocol"
        smbclient_api.remove(base + r"\g.txt", port=server.port)
        smbclient_api.rmdir(base, port=server.port)
    smbclient_api.reset_connection_cache()


def test_server_side_copy_copies_without_the_bytes_crossing_the_wire(server):
    """smbprotocol's copyfile asks for a resume key and sends FSCTL_SRV_COPYCHUNK_WRITE chunks
    (1 MiB each, 16 at most per request): the copy must come back byte for byte."""
    smbclient_api = pytest.importorskip("smbclient")
    smbclient_api.reset_connection_cache()
    smbclient_api.register_session("127.0.0.1", username="alice", password="secret1", port=server.port)
    data = os.urandom(17 * 1024 * 1024 + 4321)
    source, target = r"\\127.0.0.1\data\copy-source.bin", r"\\127.0.0.1\data\copy-target.bin"
    with smbclient_api.open_file(source, mode="wb", port=server.port) as f:
        f.write(data)
    smbclient_api.copyfile(source, target, port=server.port)
    with smbclient_api.open_file(target, mode="rb", port=server.port) as f:
        assert f.read() == data
    smbclient_api.remove(source, port=server.port)
    smbclient_api.remove(target, port=server.port)
    smbclient_api.reset_connection_cache()


def _low_level(server):
    pytest.importorskip("smbprotocol")
    from smbprotocol.connection import Connection
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect
    conn = Connection(uuid.uuid4(), "127.0.0.1", server.port)
    conn.connect()
    session = Session(conn, "alice", "secret1", require_encryption=False)
    session.connect()
    return conn, session, TreeConnect


def test_smbprotocol_delete_on_close_and_pipe_handles(server):
    from smbprotocol.exceptions import SMBResponseException
    conn, session, TreeConnect = _low_level(server)
    from smbprotocol.open import (CreateDisposition, CreateOptions, FileAttributes, FilePipePrinterAccessMask,
                                  ImpersonationLevel, Open, ShareAccess)
    from smbprotocol.file_info import FileInformationClass
    try:
        tree = TreeConnect(session, rf"\\127.0.0.1\data")
        tree.connect()
        doomed = Open(tree, "doomed.txt")
        doomed.create(ImpersonationLevel.Impersonation, 0x0012019F | 0x10000, FileAttributes.FILE_ATTRIBUTE_NORMAL,
                      ShareAccess.FILE_SHARE_READ, CreateDisposition.FILE_OVERWRITE_IF,
                      CreateOptions.FILE_NON_DIRECTORY_FILE | CreateOptions.FILE_DELETE_ON_CLOSE)
        doomed.write(b"temporary")
        doomed.close()
        again = Open(tree, "doomed.txt")
        with pytest.raises(SMBResponseException):
            again.create(ImpersonationLevel.Impersonation, 0x00120089, FileAttributes.FILE_ATTRIBUTE_NORMAL,
                         ShareAccess.FILE_SHARE_READ, CreateDisposition.FILE_OPEN, CreateOptions.FILE_NON_DIRECTORY_FILE)

        ipc = TreeConnect(session, rf"\\127.0.0.1\IPC$")
        ipc.connect()
        pipe = Open(ipc, "srvsvc")
        pipe.create(ImpersonationLevel.Impersonation, FilePipePrinterAccessMask.FILE_READ_DATA | FilePipePrinterAccessMask.FILE_WRITE_DATA,
                    0, ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE, CreateDisposition.FILE_OPEN, 0)
        # Commands on the wrong kind of handle get an error status, and the server carries on.
        with pytest.raises(SMBResponseException):
            pipe.query_directory("*", FileInformationClass.FILE_NAMES_INFORMATION)
        pipe.close()
        listing = Open(tree, "")
        listing.create(ImpersonationLevel.Impersonation, 0x00120089, FileAttributes.FILE_ATTRIBUTE_DIRECTORY,
                       ShareAccess.FILE_SHARE_READ, CreateDisposition.FILE_OPEN, CreateOptions.FILE_DIRECTORY_FILE)
        names = [e["file_name"].get_value().decode("utf-16-le") for e in
                 listing.query_directory("*", FileInformationClass.FILE_NAMES_INFORMATION)]
        assert "." in names and "doomed.txt" not in names
        listing.close()
    finally:
        conn.disconnect()


def test_smbprotocol_share_modes_and_oplock_break(server):
    from smbprotocol.exceptions import SMBResponseException
    from smbprotocol.open import (CreateDisposition, CreateOptions, FileAttributes, ImpersonationLevel, Open,
                                  RequestedOplockLevel, ShareAccess)
    conn, session, TreeConnect = _low_level(server)
    other_conn, other_session, _ = _low_level(server)
    try:
        tree = TreeConnect(session, rf"\\127.0.0.1\data")
        tree.connect()
        other_tree = TreeConnect(other_session, rf"\\127.0.0.1\data")
        other_tree.connect()
        first = Open(tree, "locked.txt")
        first.create(ImpersonationLevel.Impersonation, 0x0012019F, FileAttributes.FILE_ATTRIBUTE_NORMAL,
                     ShareAccess.FILE_SHARE_READ, CreateDisposition.FILE_OVERWRITE_IF, CreateOptions.FILE_NON_DIRECTORY_FILE)
        # Deny-write: a second writer is refused, a reader that shares write access is refused
        # too (the first open writes), and nothing changes until the first closes.
        second = Open(other_tree, "locked.txt")
        with pytest.raises(SMBResponseException) as refused:
            second.create(ImpersonationLevel.Impersonation, 0x00120116, FileAttributes.FILE_ATTRIBUTE_NORMAL,
                          ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE, CreateDisposition.FILE_OPEN,
                          CreateOptions.FILE_NON_DIRECTORY_FILE)
        assert refused.value.status == 0xC0000043  # STATUS_SHARING_VIOLATION
        first.close()
        second.create(ImpersonationLevel.Impersonation, 0x00120116, FileAttributes.FILE_ATTRIBUTE_NORMAL,
                      ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE, CreateDisposition.FILE_OPEN,
                      CreateOptions.FILE_NON_DIRECTORY_FILE)
        second.close()

        # A batch oplock is granted to a lone opener; another client's open breaks it, and the
        # second open completes once the holder's client acknowledged (smbprotocol acks itself).
        holder = Open(tree, "oplocked.txt")
        holder.create(ImpersonationLevel.Impersonation, 0x0012019F, FileAttributes.FILE_ATTRIBUTE_NORMAL,
                      ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE, CreateDisposition.FILE_OVERWRITE_IF,
                      CreateOptions.FILE_NON_DIRECTORY_FILE, oplock_level=RequestedOplockLevel.SMB2_OPLOCK_LEVEL_BATCH)
        assert holder.oplock_level == RequestedOplockLevel.SMB2_OPLOCK_LEVEL_BATCH
    finally:
        other_conn.disconnect()
        conn.disconnect()


def test_smbprotocol_change_notify_and_cancel(server):
    from smbprotocol.change_notify import CompletionFilter, FileSystemWatcher
    from smbprotocol.open import (CreateDisposition, CreateOptions, DirectoryAccessMask, FileAttributes,
                                  ImpersonationLevel, Open, ShareAccess)
    conn, session, TreeConnect = _low_level(server)
    try:
        tree = TreeConnect(session, rf"\\127.0.0.1\data")
        tree.connect()
        name = "watched-" + uuid.uuid4().hex[:8]
        directory = Open(tree, name)
        directory.create(ImpersonationLevel.Impersonation, DirectoryAccessMask.FILE_LIST_DIRECTORY | DirectoryAccessMask.SYNCHRONIZE,
                         FileAttributes.FILE_ATTRIBUTE_DIRECTORY, ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE,
                         CreateDisposition.FILE_CREATE, CreateOptions.FILE_DIRECTORY_FILE)
        names = CompletionFilter.FILE_NOTIFY_CHANGE_FILE_NAME | CompletionFilter.FILE_NOTIFY_CHANGE_DIR_NAME
        cancelled = FileSystemWatcher(directory)
        cancelled.start(names)
        cancelled.cancel()
        assert cancelled.wait() is None
        watcher = FileSystemWatcher(directory)
        watcher.start(names)
        created = Open(tree, name + "\\new.txt")
        created.create(ImpersonationLevel.Impersonation, 0x0012019F, FileAttributes.FILE_ATTRIBUTE_NORMAL,
                       ShareAccess.FILE_SHARE_READ, CreateDisposition.FILE_CREATE, CreateOptions.FILE_NON_DIRECTORY_FILE)
        created.close()
        changes = watcher.wait()
        assert [(c["action"].get_value(), c["file_name"].get_value()) for c in changes] == [(1, "new.txt")]
        directory.close()
    finally:
        conn.disconnect()


def test_clients_that_vanish_mid_request_do_not_hurt_the_server(server):
    for _ in range(30):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(_frame(_negotiate_smb2()))
    _still_serving(server)


# Malformed input over raw TCP: the server answers or drops that connection and keeps serving.

def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def _negotiate_smb2(dialects=(0x0202, 0x0210, 0x0300)):
    body = struct.pack("<HHHHI16sIHH", 36, len(dialects), 1, 0, 0, uuid.uuid4().bytes, 0, 0, 0)
    body += b"".join(struct.pack("<H", d) for d in dialects)
    return _header(0, 0) + body


def _header(command, message_id, session_id=0, tree_id=0):
    return struct.pack("<4sHHIHHIIQIIQ16s", b"\xfeSMB", 64, 0, 0, command, 1, 0, 0, message_id, 0, tree_id, session_id, b"\0" * 16)


def _exchange(port, frame, expect_reply=True):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(frame)
        try:
            head = s.recv(4)
        except (ConnectionResetError, socket.timeout):
            return None
        if len(head) < 4:
            return None
        length = struct.unpack(">I", head)[0]
        data = b""
        while len(data) < length:
            chunk = s.recv(length - len(data))
            if not chunk:
                break
            data += chunk
        return data


def _still_serving(server):
    assert "blocks" in smbclient(server, "data", "ls")


def test_malformed_frames_are_refused_and_the_server_keeps_serving(server):
    # Short NetBIOS frames, a frame claiming 16 MiB before any login, a bad protocol id.
    assert _exchange(server.port, b"\x00\x00\x00\x02ab") is None
    assert _exchange(server.port, b"\x00\xff\xff\xff" + b"x" * 100) is None
    assert _exchange(server.port, _frame(b"\xfeXYZ" + b"\0" * 60)) is None
    # A header with NextCommand past the end, offsets past the end in NEGOTIATE.
    bad = bytearray(_negotiate_smb2())
    struct.pack_into("<H", bad, 66, 60000)  # dialect count far past the message
    reply = _exchange(server.port, _frame(bytes(bad)))
    assert reply is None or struct.unpack_from("<I", reply, 8)[0] != 0
    _still_serving(server)


def test_smb1_negotiate_is_answered_with_smb2(server):
    dialects = b"".join(b"\x02" + d + b"\x00" for d in (b"NT LM 0.12", b"SMB 2.002", b"SMB 2.???"))
    smb1 = b"\xffSMB" + bytes([0x72]) + b"\0" * 27 + b"\x00" + struct.pack("<H", len(dialects)) + dialects
    reply = _exchange(server.port, _frame(smb1))
    assert reply[:4] == b"\xfeSMB"
    assert struct.unpack_from("<H", reply, 64 + 4)[0] == 0x02FF


def test_commands_before_session_setup_are_refused(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(_frame(_negotiate_smb2()))
        head = s.recv(4)
        length = struct.unpack(">I", head)[0]
        while length > 0:
            length -= len(s.recv(length))
        path = "\\\\127.0.0.1\\data".encode("utf-16-le")
        tree = _header(3, 1, session_id=0x1234) + struct.pack("<HHHH", 9, 0, 72, len(path)) + path
        s.sendall(_frame(tree))
        head = s.recv(4)
        reply = s.recv(struct.unpack(">I", head)[0])
        assert struct.unpack_from("<I", reply, 8)[0] == 0xC0000203  # STATUS_USER_SESSION_DELETED
    _still_serving(server)
