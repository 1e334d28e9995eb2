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
