"""Access control end to end, over the linux and io_uring modules (a real host directory):
NFS export options (read-only, root squash with anon ids, allowed client addresses checked
with a second loopback address), handles of one export refused on another, mode bits and
ownership for AUTH_SYS users, and no way out of the mount root over NFS, SMB or S3 (symlinks
pointing out, `..`)."""

import json
import os
import socket
import struct
import subprocess

import pytest
from botocore.exceptions import ClientError

from conftest import Server, free_port
from nfs_support import NFS, ROOT, read_record, record, rpc_call, user
from s3_support import ACCESS_KEY, SECRET_KEY, make_client

OK, PERM, NOENT, ACCES, NOTDIR, ROFS, XDEV, STALE = 0, 1, 2, 13, 20, 30, 18, 70
SECRET = "host secret outside the share\n"


@pytest.fixture(scope="module", params=["linux", "io_uring"])
def server(request, nas_bin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"access-{request.param}")
    share = tmp / "share"
    for name in ("a", "b", "sq"):
        (share / name).mkdir(parents=True)
    share.chmod(0o755)
    (share / "a").chmod(0o777)
    (share / "sq").chmod(0o777)
    outside = tmp / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    # Ways out, planted on the host: an absolute symlink, a relative one, one to a file.
    os.symlink(str(outside), share / "a" / "out")
    os.symlink("../../outside", share / "a" / "up")
    os.symlink(str(outside / "secret.txt"), share / "a" / "secret-link")
    ports = {"nfs": free_port(), "smb": free_port(), "s3": free_port()}
    config = tmp / "nas.json"
    config.write_text(json.dumps({
        "server": {"bind": "127.0.0.1", "nfs_port": ports["nfs"], "smb_port": ports["smb"], "s3_port": ports["s3"],
                   "admin_port": 0, "metrics_port": 0, "threads": 1},
        "mounts": {"data": {"module": request.param, "path": str(share), "cache_ttl_ms": 0}},
        "exports": {
            "/a": {"path": "/data/a"},
            "/b": {"path": "/data/b"},
            "/ro": {"path": "/data/a", "read_only": True},
            "/rootsq": {"path": "/data/sq", "squash": "root", "anon_uid": 4343, "anon_gid": 4344},
            "/only2": {"path": "/data/a", "clients": ["127.0.0.2/32"]},
        },
        "shares": {"a": {"path": "/data/a"}},
        "buckets": {"abucket": {"path": "/data/a"}},
        "users": {"alice": {"password": "secret1", "uid": 1000, "gid": 1000,
                            "s3_access_key": ACCESS_KEY, "s3_secret_key": SECRET_KEY}},
    }))
    config.chmod(0o600)
    running = Server(nas_bin, config, tmp)
    running.ports = ports
    running.share = share
    yield running
    assert running.stop() == 0


def mount_from(port, export, source):
    """MNT (MOUNT v3 procedure 1) over a connection from `source`: (status, handle)."""
    with socket.socket() as s:
        s.settimeout(10)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        path = export.encode()
        body = struct.pack(">I", len(path)) + path + b"\0" * ((4 - len(path) % 4) % 4)
        s.sendall(record(rpc_call(1, 100005, 3, 1, body)))
        reply = read_record(s)
        status = struct.unpack_from(">I", reply, 24)[0]
        if status != 0:
            return status, None
        length = struct.unpack_from(">I", reply, 28)[0]
        return status, reply[32:32 + length]


def getattr_from(port, handle, source):
    with socket.socket() as s:
        s.settimeout(10)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        body = struct.pack(">I", len(handle)) + handle + b"\0" * ((4 - len(handle) % 4) % 4)
        s.sendall(record(rpc_call(2, 100003, 3, 1, body)))
        return struct.unpack_from(">I", read_record(s), 24)[0]


def test_allowed_client_addresses(server):
    status, handle = mount_from(server.ports["nfs"], "/only2", "127.0.0.2")
    assert status == OK
    assert getattr_from(server.ports["nfs"], handle, "127.0.0.2") == OK
    assert mount_from(server.ports["nfs"], "/only2", "127.0.0.1")[0] == ACCES
    # The handle does not help an address the export does not admit.
    assert getattr_from(server.ports["nfs"], handle, "127.0.0.1") == ACCES


def test_handles_of_one_export_are_refused_on_another(server):
    a, b = NFS(server.ports["nfs"], "/a"), NFS(server.ports["nfs"], "/b")
    try:
        # The first byte names the export; the MAC binds the rest to it.
        assert a.root[0] != b.root[0]
        moved = bytes([b.root[0]]) + a.root[1:]
        assert a.nfs.getattr(moved, ROOT)["status"] == STALE
        file = a.handle(a.create(a.root, "in-a", mode=0o644))
        assert a.nfs.rename(a.root, "in-a", b.root, "moved", auth=ROOT)["status"] == XDEV
        assert a.nfs.link(file, b.root, "linked", auth=ROOT)["status"] == XDEV
        assert a.nfs.remove(a.root, "in-a", auth=ROOT)["status"] == OK
    finally:
        a.close()
        b.close()


def test_read_only_export_and_root_squash(server):
    ro = NFS(server.ports["nfs"], "/ro")
    try:
        assert ro.create(ro.root, "nope")["status"] == ROFS
        assert ro.nfs.mkdir(ro.root, "nope", mode=0o755, auth=ROOT)["status"] == ROFS
    finally:
        ro.close()
    squashed = NFS(server.ports["nfs"], "/rootsq")
    try:
        by_root = squashed.create(squashed.root, "by-root", mode=0o644)
        assert by_root["status"] == OK
        attributes = by_root["resok"]["obj_attributes"]["attributes"]
        assert (attributes["uid"], attributes["gid"]) == (4343, 4344)
        by_user = squashed.create(squashed.root, "by-user", auth=user(1000), mode=0o644)
        assert by_user["resok"]["obj_attributes"]["attributes"]["uid"] == 1000
        on_disk = server.share / "sq"
        assert (os.stat(on_disk / "by-root").st_uid, os.stat(on_disk / "by-root").st_gid) == (4343, 4344)
        assert os.stat(on_disk / "by-user").st_uid == 1000
    finally:
        squashed.close()


def test_mode_bits_and_ownership_for_auth_sys_users(server):
    a = NFS(server.ports["nfs"], "/a")
    try:
        owned = a.handle(a.create(a.root, "root-file", mode=0o644))
        assert a.nfs.write(owned, 0, 4, b"root", 2, auth=ROOT)["status"] == OK
        assert os.stat(server.share / "a" / "root-file").st_uid == 0
        assert a.nfs.read(owned, 0, 4, auth=user(1000))["resok"]["data"] == b"root"
        assert a.nfs.write(owned, 0, 4, b"evil", 2, auth=user(1000))["status"] == ACCES
        assert a.nfs.setattr(owned, mode=0o666, auth=user(1000))["status"] == PERM
        assert a.nfs.setattr(owned, uid=1000, auth=user(1000))["status"] == PERM
        private = a.handle(a.nfs.mkdir(a.root, "private", mode=0o700, auth=ROOT))
        assert a.create(private, "x", auth=user(1000))["status"] == ACCES
        assert a.nfs.lookup(private, "x", user(1000))["status"] == ACCES
        mine = a.create(a.root, "user-file", auth=user(1000), mode=0o600)
        assert mine["status"] == OK
        assert os.stat(server.share / "a" / "user-file").st_uid == 1000
        assert a.nfs.read(a.handle(mine), 0, 4, auth=user(1001))["status"] == ACCES
        assert (server.share / "a" / "root-file").read_bytes() == b"root"
        assert a.nfs.rmdir(a.root, "private", auth=ROOT)["status"] == OK
    finally:
        a.close()


def test_nfs_never_leaves_the_mount_root(server):
    a = NFS(server.ports["nfs"], "/a")
    try:
        # ".." of the export root is the root (the export covers nothing above it), also in READDIRPLUS.
        root_id = a.nfs.getattr(a.root, ROOT)["attributes"]["fileid"]
        dotdot = a.nfs.lookup(a.root, "..", ROOT)
        assert dotdot["status"] == OK and dotdot["resok"]["object"]["data"] == a.root
        assert dotdot["resok"]["obj_attributes"]["attributes"]["fileid"] == root_id
        listing = a.nfs.readdirplus(a.root, cookie_verf=b"\0" * 8, auth=ROOT)
        node, names = listing["resok"]["reply"]["entries"], []
        while node:
            names.append(node[0]["name"])
            if node[0]["name"] == b"..":
                assert not node[0]["name_handle"]["present"] and not node[0]["name_attributes"]["present"]
            node = node[0]["nextentry"]
        assert b"out" in names
        for name in ("out", "up", "secret-link"):
            found = a.nfs.lookup(a.root, name, ROOT)
            assert found["status"] == OK and found["resok"]["obj_attributes"]["attributes"]["type"] == 5  # NF3LNK
            link = found["resok"]["object"]["data"]
            assert a.nfs.lookup(link, "secret.txt", ROOT)["status"] == NOTDIR
            assert a.nfs.read(link, 0, 100, auth=ROOT)["status"] != OK
        assert a.nfs.lookup(a.root, "../outside", ROOT)["status"] != OK
        assert a.nfs.lookup(a.root, "/etc", ROOT)["status"] != OK
    finally:
        a.close()


def smbclient(server, commands):
    return subprocess.run(["smbclient", "-p", str(server.ports["smb"]), "//127.0.0.1/a", "-U", "alice%secret1",
                           "-m", "SMB3_11", "-c", commands], capture_output=True, text=True, timeout=60)


def test_smb_never_leaves_the_mount_root(server, tmp_path):
    for remote in ("out\\secret.txt", "up\\secret.txt", "secret-link", "..\\..\\outside\\secret.txt",
                   "..\\outside\\secret.txt"):
        target = tmp_path / "got.txt"
        result = smbclient(server, f"get {remote} {target}")
        assert not target.exists() or SECRET not in target.read_text(), (remote, result.stdout)
        assert "NT_STATUS_" in result.stdout + result.stderr, (remote, result.stdout + result.stderr)
    listing = smbclient(server, "cd ..; ls")
    assert "secret.txt" not in listing.stdout


def test_s3_never_leaves_the_mount_root(server):
    s3 = make_client(f"http://127.0.0.1:{server.ports['s3']}")
    for key in ("out/secret.txt", "up/secret.txt", "secret-link", "../outside/secret.txt", "a/../../outside/secret.txt"):
        with pytest.raises(ClientError) as refused:
            s3.get_object(Bucket="abucket", Key=key)
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 403, 404), (key, refused.value.response)
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="abucket").get("Contents", [])]
    assert not any("secret.txt" in key for key in listed), listed


# Per-user access: shares.NAME.users / read_only_users and buckets.NAME.users.

KEYS = {"alice": ("alicekey", "alicesecret1"), "bob": ("bobkey", "bobsecret12"), "carol": ("carolkey", "carolsecret")}


@pytest.fixture(scope="module")
def users_server(nas_bin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("per-user")
    ports = {"smb": free_port(), "s3": free_port()}
    config = tmp / "nas.json"
    config.write_text(json.dumps({
        "server": {"bind": "127.0.0.1", "nfs_port": 0, "smb_port": ports["smb"], "s3_port": ports["s3"],
                   "admin_port": 0, "metrics_port": 0, "threads": 1},
        "mounts": {"m": {"module": "memfs", "path": "/"}, "n": {"module": "memfs", "path": "/"}},
        "shares": {"team": {"path": "/m", "users": ["alice", "bob"], "read_only_users": ["bob"]},
                   "open": {"path": "/n"}},
        "buckets": {"alicebucket": {"path": "/m", "users": ["alice"]}, "shared": {"path": "/n"}},
        "users": {name: {"password": f"{name}-pw", "uid": 1000 + i, "gid": 1000, "s3_access_key": key, "s3_secret_key": secret}
                  for i, (name, (key, secret)) in enumerate(KEYS.items())},
    }))
    config.chmod(0o600)
    running = Server(nas_bin, config, tmp)
    running.ports = ports
    yield running
    assert running.stop() == 0


def smb_as(server, name, share, commands):
    result = subprocess.run(["smbclient", "-p", str(server.ports["smb"]), f"//127.0.0.1/{share}", "-U", f"{name}%{name}-pw",
                             "-m", "SMB3_11", "-c", commands], capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout + result.stderr


def test_smb_share_users_and_read_only_users(users_server, tmp_path):
    local = tmp_path / "up.txt"
    local.write_text("from a share user\n")
    code, out = smb_as(users_server, "alice", "team", f"put {local} alice.txt; ls")
    assert code == 0 and "alice.txt" in out, out
    code, out = smb_as(users_server, "bob", "team", f"ls; put {local} bob.txt")
    assert "alice.txt" in out and "NT_STATUS_ACCESS_DENIED" in out, out
    code, out = smb_as(users_server, "carol", "team", "ls")
    assert code != 0 and "NT_STATUS_ACCESS_DENIED" in out, out
    code, out = smb_as(users_server, "carol", "open", f"put {local} carol.txt; ls")
    assert code == 0 and "carol.txt" in out, out


def test_s3_bucket_users(users_server):
    endpoint = f"http://127.0.0.1:{users_server.ports['s3']}"
    alice = make_client(endpoint, *KEYS["alice"])
    bob = make_client(endpoint, *KEYS["bob"])
    alice.put_object(Bucket="alicebucket", Key="doc", Body=b"alice's")
    assert alice.get_object(Bucket="alicebucket", Key="doc")["Body"].read() == b"alice's"
    for attempt in (lambda: bob.get_object(Bucket="alicebucket", Key="doc"),
                    lambda: bob.put_object(Bucket="alicebucket", Key="doc", Body=b"bob's"),
                    lambda: bob.list_objects_v2(Bucket="alicebucket"),
                    lambda: bob.copy_object(Bucket="shared", Key="stolen", CopySource={"Bucket": "alicebucket", "Key": "doc"})):
        with pytest.raises(ClientError) as refused:
            attempt()
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert {b["Name"] for b in alice.list_buckets()["Buckets"]} == {"alicebucket", "shared"}
    assert {b["Name"] for b in bob.list_buckets()["Buckets"]} == {"shared"}
    bob.put_object(Bucket="shared", Key="bobs", Body=b"ok")
    assert alice.get_object(Bucket="alicebucket", Key="doc")["Body"].read() == b"alice's"


def test_user_lists_name_configured_users(nas_bin, tmp_path):
    for section in ({"shares": {"s": {"path": "/m", "users": ["mallory"]}}},
                    {"shares": {"s": {"path": "/m", "read_only_users": ["mallory"]}}},
                    {"buckets": {"bucket1": {"path": "/m", "users": ["mallory"]}}}):
        config = tmp_path / "bad.json"
        config.write_text(json.dumps({"mounts": {"m": {"module": "memfs", "path": "/"}},
                                      "users": {"alice": {"password": "x", "uid": 1000, "gid": 1000}}, **section}))
        config.chmod(0o600)
        result = subprocess.run([str(nas_bin), "config", "check", str(config)], capture_output=True, text=True, timeout=30)
        text = result.stdout + result.stderr
        assert result.returncode != 0 and 'no user "mallory" is configured' in text and "alice" in text, text
