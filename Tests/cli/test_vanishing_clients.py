"""Clients that vanish in the middle of a large request: an NFSv3 WRITE record, an S3 PUT body
and an SMB write cut off by a TCP reset (or the client process killed). The server must free
what the request held (receive buffers, open files, temporary files) and keep serving."""

import json
import os
import socket
import struct
import subprocess
import time
import urllib.request

import pytest

from conftest import rss_bytes, wait_for
from disk_support import disk_server
from nfs_support import NFS, ROOT, record, rpc_call
from s3_support import make_client, signed_put_head

ROUNDS = 12


@pytest.fixture
def server(nas_bin, tmp_path):
    running = disk_server(nas_bin, tmp_path)
    yield running
    assert running.stop() == 0


def status(server):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.settings['admin_port']}/api/v1/status", timeout=10) as response:
        return json.loads(response.read())


def footprint(server):
    """(open connections, buffers handed out, open descriptors) of the server right now; the
    admin request asking counts as one connection every time."""
    loops = status(server)["loops"]
    fds = len(os.listdir(f"/proc/{server.proc.pid}/fd"))
    return sum(loop["connections"] for loop in loops), sum(loop["buffers_outstanding"] for loop in loops), fds


def open_files(server):
    directory = f"/proc/{server.proc.pid}/fd"
    return sorted(os.readlink(f"{directory}/{fd}") for fd in os.listdir(directory))


def reset(sock):
    """Closes with a TCP RST instead of a FIN (SO_LINGER on, zero timeout)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


AUTH_SYS_ROOT = struct.pack(">IIIIII", 1, 4, *struct.unpack(">I", b"test"), 0, 0, 0)


def nfs_write_call(xid, handle, data):
    body = struct.pack(">I", len(handle)) + handle + b"\0" * ((4 - len(handle) % 4) % 4)
    body += struct.pack(">QII", 0, len(data), 2) + struct.pack(">I", len(data)) + data
    return record(rpc_call(xid, 100003, 3, 7, body, cred_flavor=1, cred=AUTH_SYS_ROOT))


def test_vanishing_clients_leave_nothing_behind(server, tmp_path):
    nfs_port, s3_port, smb_port = server.settings["nfs_port"], server.settings["s3_port"], server.settings["smb_port"]
    client = NFS(nfs_port, export="/disk")
    handle = client.handle(client.create(client.root, "target"))
    client.close()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(48 * 1024 * 1024))
    # Warm up each path once so pools and caches reach their working size.
    s3 = make_client(f"http://127.0.0.1:{s3_port}")
    s3.put_object(Bucket="bucket", Key="warm", Body=os.urandom(4 * 1024 * 1024))
    time.sleep(0.5)
    baseline = footprint(server)  # the admin request and boto3's kept-alive connection
    rss_before = rss_bytes(server.proc.pid)

    payload = os.urandom(1024 * 1024)
    for round_index in range(ROUNDS):
        # NFSv3: a 1 MiB WRITE record, half sent.
        call = nfs_write_call(round_index + 1, handle, payload)
        sock = socket.create_connection(("127.0.0.1", nfs_port))
        sock.sendall(call[: len(call) // 2])
        time.sleep(0.02)
        reset(sock)
        # S3: an 8 MiB PUT, 3 MiB of its body sent.
        sock = socket.create_connection(("127.0.0.1", s3_port))
        body = os.urandom(8 * 1024 * 1024)
        sock.sendall(signed_put_head(s3_port, f"vanished-{round_index}", body))
        sock.sendall(body[: 3 * 1024 * 1024])
        time.sleep(0.05)
        reset(sock)
    # SMB: smbclient killed while it is writing a 48 MiB file.
    for _ in range(3):
        process = subprocess.Popen(["smbclient", "-p", str(smb_port), "//127.0.0.1/share", "-U", "nas%secret1",
                                    "-c", f"put {big} smb-vanished"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(lambda: (server.disk / "smb-vanished").exists() and (server.disk / "smb-vanished").stat().st_size > 0
                        or process.poll() is not None, timeout=30)
        assert process.poll() is None, "smbclient finished before it could be killed: use a bigger file"
        process.kill()
        process.wait()

    # Everything the vanished requests held is given back. The SMB file is removed first: the
    # descriptors the io_uring module caches for it go too, while an open the vanished session
    # leaked would keep it open (shown as "(deleted)").
    client = NFS(nfs_port, export="/disk")
    assert client.nfs.remove(client.root, "smb-vanished", auth=ROOT)["status"] == 0
    client.close()
    assert wait_for(lambda: footprint(server)[0] == baseline[0], timeout=20), (baseline, footprint(server))
    after = wait_for(lambda: (lambda now: now if now[1] <= baseline[1] and now[2] <= baseline[2] else None)(footprint(server)), timeout=20)
    assert after, f"baseline (connections, buffers, fds) {baseline}, now {footprint(server)}: {open_files(server)}"
    growth = rss_bytes(server.proc.pid) - rss_before
    print(f"baseline {baseline}, after {after}, RSS growth {growth / 1048576:.1f} MiB")
    assert growth < 96 * 1024 * 1024, growth
    # No object and no temporary file of a cut-off PUT is left.
    assert not [name for name in open_files(server) if "(deleted)" in name], open_files(server)
    leftovers = sorted(p.name for p in server.disk.iterdir())
    assert leftovers == ["target", "warm"], leftovers
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bucket")["Contents"]] == ["target", "warm"]
    # And it keeps serving.
    s3.put_object(Bucket="bucket", Key="after", Body=b"still here")
    assert s3.get_object(Bucket="bucket", Key="after")["Body"].read() == b"still here"
    client = NFS(nfs_port, export="/disk")
    assert client.nfs.write(handle, 0, 5, b"again", 2, auth=ROOT)["status"] == 0
    client.close()
