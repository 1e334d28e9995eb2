"""Stopping under load: SIGTERM stops accepting, answers the requests in progress (an S3 PUT
whose body is still arriving included), flushes the mounts and exits 0 within
`server.shutdown_timeout_s`; every write a client saw acknowledged is on disk afterwards."""

import hashlib
import json
import os
import signal
import socket
import threading
import time

import pytest
from botocore.exceptions import ClientError

from conftest import free_port, wait_for
from disk_support import disk_server
from nfs_support import NFS, ROOT
from s3_support import make_client, signed_put_head
from smb_support import smb_create, smb_tree


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


class Writers:
    """NFSv3 FILE_SYNC writers and S3 PUT clients running until the server goes away; each
    remembers what was acknowledged (name -> sha256)."""

    def __init__(self, server, count=2):
        self.server = server
        self.acked = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.nfs, args=(i,)) for i in range(count)]
        self.threads += [threading.Thread(target=self.s3, args=(i,)) for i in range(count)]
        for thread in self.threads:
            thread.start()

    def ack(self, name, data):
        with self.lock:
            self.acked[name] = hashlib.sha256(data).hexdigest()

    def nfs(self, index):
        try:
            client = NFS(self.server.settings["nfs_port"], export="/disk")
            n = 0
            while not self.stop.is_set():
                name = f"nfs-{index}-{n}"
                data = os.urandom(65536)
                handle = client.handle(client.create(client.root, name))
                if client.nfs.write(handle, 0, len(data), data, 2, auth=ROOT)["status"] == 0:
                    self.ack(name, data)
                n += 1
        except Exception:
            return  # the server went away

    def s3(self, index):
        try:
            s3 = make_client(f"http://127.0.0.1:{self.server.settings['s3_port']}")
            n = 0
            while not self.stop.is_set():
                name = f"s3-{index}-{n}"
                data = os.urandom(200_000)
                s3.put_object(Bucket="bucket", Key=name, Body=data)
                self.ack(name, data)
                n += 1
        except Exception:
            return

    def join(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def check_acknowledged(disk, acked):
    assert len(acked) > 10, acked
    for name, digest in acked.items():
        assert hashlib.sha256((disk / name).read_bytes()).hexdigest() == digest, name


def test_sigterm_drains_in_flight_requests_and_exits_zero(nas_bin, tmp_path):
    server = disk_server(nas_bin, tmp_path, shutdown_timeout_s=5)
    port = server.settings["s3_port"]
    body = os.urandom(1024 * 1024)
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(signed_put_head(port, "in-flight", body) + body[:300_000])
    writers = Writers(server)
    time.sleep(1.5)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    # No new connections once the server stops accepting.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).recv(1)
    # The PUT whose body was arriving is still served to the end.
    slow.sendall(body[300_000:])
    answer = read_response(slow)
    slow.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert server.proc.wait(timeout=10) == 0
    elapsed = time.monotonic() - started
    writers.join()
    assert elapsed < 5 + 1, elapsed
    assert (server.disk / "in-flight").read_bytes() == body
    check_acknowledged(server.disk, writers.acked)
    log = server.log_text()
    assert "requests drained and mounts flushed in" in log and "still in progress" not in log, log[-2000:]
    print(f"SIGTERM to exit: {elapsed:.2f} s; {len(writers.acked)} acknowledged writes verified")


def test_sigterm_gives_up_on_a_stalled_request_after_the_timeout(nas_bin, tmp_path):
    server = disk_server(nas_bin, tmp_path, shutdown_timeout_s=1)
    port = server.settings["s3_port"]
    stalled = socket.create_connection(("127.0.0.1", port))
    stalled.sendall(signed_put_head(port, "never-finished", b"x" * 1024 * 1024) + b"x" * 1000)
    time.sleep(0.3)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=10) == 0
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 3, elapsed
    stalled.close()
    assert "1 request(s) still in progress after shutdown_timeout_s (1 s)" in server.log_text()
    assert not (server.disk / "never-finished").exists()


def test_sighup_applies_shares_buckets_users_and_names_what_needs_a_redisk_server(nas_bin, tmp_path):
    server = disk_server(nas_bin, tmp_path, smb_port=free_port())
    s3 = make_client(f"http://127.0.0.1:{server.settings['s3_port']}")
    s3.put_object(Bucket="bucket", Key="before", Body=b"1")
    nfs = NFS(server.settings["nfs_port"], export="/disk")
    config = json.loads((tmp_path / "nas.json").read_text())

    # An unchanged file: nothing to do.
    server.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "is valid and unchanged" in server.log_text())

    # A broken file is refused with its key; the server keeps serving.
    broken = json.loads(json.dumps(config))
    broken["server"]["threads"] = "many"
    (tmp_path / "nas.json").write_text(json.dumps(broken))
    server.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reload (SIGHUP) refused" in server.log_text())
    assert "server.threads: expected a whole number" in server.log_text()

    # A new bucket, share and user are applied; a port change waits for a restart.
    changed = json.loads(json.dumps(config))
    old_port = server.settings["nfs_port"]
    changed["server"]["nfs_port"] = free_port()
    changed["buckets"]["more"] = {"path": "/disk"}
    changed["shares"] = {"added": {"path": "/disk"}}
    changed["users"]["carol"] = {"password": "carol-pass", "uid": 0, "gid": 0,
                                 "s3_access_key": "carolaccesskey", "s3_secret_key": "carol-secret-key"}
    (tmp_path / "nas.json").write_text(json.dumps(changed))
    server.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "users.carol changed: applied" in server.log_text())
    log = server.log_text()
    assert "reload (SIGHUP): server.nfs_port changed: needs a restart" in log, log[-3000:]
    assert "reload (SIGHUP): buckets.more changed: applied" in log and "reload (SIGHUP): shares.added changed: applied" in log
    assert "carol-secret-key" not in log and "carol-pass" not in log

    # The connections made before are served on, under the old port; the new entries work.
    assert server.proc.poll() is None
    s3.put_object(Bucket="more", Key="after", Body=b"2")
    assert s3.get_object(Bucket="bucket", Key="after")["Body"].read() == b"2"
    assert nfs.lookup(nfs.root, "after")["status"] == 0
    nfs.close()
    old = NFS(old_port, export="/disk")  # a new connection on the old port too
    assert old.lookup(old.root, "after")["status"] == 0
    old.close()
    carol = make_client(f"http://127.0.0.1:{server.settings['s3_port']}", access_key="carolaccesskey", secret_key="carol-secret-key")
    assert carol.get_object(Bucket="more", Key="before")["Body"].read() == b"1"
    conn, tree = smb_tree(server.settings["smb_port"], user="carol", password="carol-pass", share="added")
    handle = smb_create(tree, "via-added-share")
    handle.write(b"smb", 0)
    handle.close()
    conn.disconnect()
    assert (server.disk / "via-added-share").read_bytes() == b"smb"

    # Removing the user again takes its access away.
    (tmp_path / "nas.json").write_text(json.dumps(config))
    server.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: server.log_text().count("users.carol changed: applied") == 2)
    with pytest.raises(ClientError) as refused:
        carol.list_objects_v2(Bucket="bucket")
    assert refused.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert server.stop() == 0
