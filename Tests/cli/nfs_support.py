"""Helpers for the NFS tests: a running server with NFS exports, pyNfsClient sessions, raw RPC."""

import json
import socket
import struct

import pyNfsClient.nfs3
from pyNfsClient import Mount, NFSv3

# pyNfsClient turns every payload into str(value).encode(), so bytes (write data, cookie
# verifiers) arrive as "b'...'": pass bytes through unchanged. A client bug, not the server's.
pyNfsClient.nfs3.str_to_bytes = lambda value: value if isinstance(value, bytes) else str(value).encode()

from conftest import Server, free_port

ROOT = {"flavor": 1, "machine_name": "test", "uid": 0, "gid": 0, "aux_gid": [], "stamp": 1}


def user(uid, gid=None):
    return {"flavor": 1, "machine_name": "test", "uid": uid, "gid": uid if gid is None else gid, "aux_gid": [], "stamp": 1}


def nfs_config(tmp_path, exports=None, mounts=None, **server):
    settings = {"bind": "127.0.0.1", "nfs_port": free_port(), "smb_port": 0, "s3_port": 0, "admin_port": 0,
                "metrics_port": 0, "threads": 2}
    settings.update(server)
    config = {"server": settings, "mounts": mounts or {"memfs": {"module": "memfs", "path": "/"}}}
    if exports is not None:
        config["exports"] = exports
    path = tmp_path / "nas.json"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path, settings["nfs_port"]


class NFS:
    """A mounted export through pyNfsClient (MOUNT and NFS on the server's NFS port)."""

    def __init__(self, port, export="/memfs", auth=ROOT):
        self.port = port
        self.auth = auth
        self.mount = Mount(host="127.0.0.1", port=port, timeout=10, auth=auth)
        self.mount.connect()
        result = self.mount.mnt(export, auth)
        assert result["status"] == 0, result
        self.root = result["mountinfo"]["fhandle"]
        self.nfs = NFSv3("127.0.0.1", port, 10, auth)
        self.nfs.connect()

    def close(self):
        self.nfs.disconnect()
        self.mount.disconnect()

    def create(self, directory, name, how=1, auth=None, **attrs):
        """CREATE with createhow3 `how` (0 unchecked, 1 guarded, 2 exclusive)."""
        result = self.nfs.create(directory, name, how, auth=auth or self.auth, **attrs)
        return result

    def handle(self, result):
        return result["resok"]["obj"]["handle"]["data"]

    def lookup(self, directory, name, auth=None):
        return self.nfs.lookup(directory, name, auth or self.auth)


def rpc_call(xid, program, version, procedure, body=b"", rpc_version=2, cred_flavor=0, cred=b""):
    header = struct.pack(">IIIIII", xid, 0, rpc_version, program, version, procedure)
    header += struct.pack(">II", cred_flavor, len(cred)) + cred + b"\0" * ((4 - len(cred) % 4) % 4)
    header += struct.pack(">II", 0, 0)
    return header + body


def record(payload, last=True):
    return struct.pack(">I", (0x80000000 if last else 0) | len(payload)) + payload


def read_record(sock):
    data = b""
    while True:
        mark = _read_exact(sock, 4)
        if mark is None:
            return None
        (value,) = struct.unpack(">I", mark)
        data += _read_exact(sock, value & 0x7FFFFFFF)
        if value & 0x80000000:
            return data


def _read_exact(sock, count):
    out = b""
    while len(out) < count:
        chunk = sock.recv(count - len(out))
        if not chunk:
            return None
        out += chunk
    return out


def raw_connection(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def null_works(port):
    with raw_connection(port) as s:
        s.sendall(record(rpc_call(99, 100003, 3, 0)))
        reply = read_record(s)
        return reply is not None and struct.unpack(">IIIIII", reply[:24]) == (99, 1, 0, 0, 0, 0)
