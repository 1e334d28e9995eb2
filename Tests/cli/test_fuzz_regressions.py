"""Inputs the fuzz targets (scripts/fuzz) found crashing the server, replayed against the real
binary: each file in fuzz-regressions/TARGET/ is sent on the port that target feeds (nfs-rpc:
the NFS port, smb: the SMB port, a NetBIOS frame at a time) over one connection, which is then
half-closed; the server must survive it and still answer a new client."""

import json
import pathlib
import socket
import struct

import pytest

from conftest import Server, free_port

HERE = pathlib.Path(__file__).resolve().parent
CASES = sorted((path.parent.name, path) for path in (HERE / "fuzz-regressions").glob("*/*"))
NULL_CALL = bytes.fromhex("80000028" "00000001" "00000000" "00000002" "000186a3" "00000003" "00000000"
                          "00000000" "00000000" "00000000" "00000000")


@pytest.fixture(scope="module")
def server(nas_bin, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("fuzz-regressions")
    ports = {"nfs-rpc": free_port(), "smb": free_port()}
    config = tmp_path / "nas.json"
    # The fuzz harness's configuration (Fuzz/Sources/FuzzWire/WireServer.swift).
    config.write_text(json.dumps({
        "server": {"bind": "127.0.0.1", "threads": 1, "nfs_port": ports["nfs-rpc"], "smb_port": ports["smb"],
                   "s3_port": 0, "admin_port": 0, "metrics_port": 0, "request_timeout_s": 5},
        "mounts": {"m": {"module": "memfs", "path": "/"}},
        "shares": {"public": {"path": "/m", "guest": True}, "data": {"path": "/m"}},
        "users": {"alice": {"password": "secret1", "uid": 1000, "gid": 1000}},
    }))
    config.chmod(0o600)
    running = Server(nas_bin, config, tmp_path)
    running.ports = ports
    yield running
    assert running.stop() == 0


def netbios_frames(data):
    position = 0
    while position < len(data):
        end = position + 4 + int.from_bytes(data[position + 1:position + 4], "big")
        yield data[position:end]
        position = end


def exchange(port, data, smb=False):
    """As the fuzz harness sends: all at once, or (SMB) a frame at a time, each after the
    previous one's answer or a short silence."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for piece in netbios_frames(data) if smb else [data]:
            s.sendall(piece)
            if smb:
                s.settimeout(0.2)
                try:
                    s.recv(65536)
                except (socket.timeout, OSError):
                    pass
                s.settimeout(10)
        s.shutdown(socket.SHUT_WR)
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass


@pytest.mark.parametrize("target,path", CASES, ids=[f"{t}/{p.name}" for t, p in CASES])
def test_fuzz_input_does_not_crash_the_server(server, target, path):
    exchange(server.ports[target], path.read_bytes(), smb=target == "smb")
    assert server.proc.poll() is None, server.log_text()[-2000:]
    with socket.create_connection(("127.0.0.1", server.ports["nfs-rpc"]), timeout=10) as s:
        s.sendall(NULL_CALL)
        reply = s.recv(64)
        assert len(reply) >= 28 and struct.unpack(">I", reply[4:8])[0] == 1
