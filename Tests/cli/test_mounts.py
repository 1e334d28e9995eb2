"""Every mount module behind one server, reached over NFS: memfs, linux, io_uring and the
demofs plugin loaded through `server.vfs` exactly as in the reference configuration."""

import hashlib
import json
import os
import subprocess

from conftest import REPO, Server, free_port


def url(port, path):
    return f"nfs://127.0.0.1{path}?version=3&nfsport={port}&mountport={port}"


def demofs_library(nas_bin):
    path = nas_bin.parent / "libdmanoel-NAS_vfs_demofs.so"
    assert path.exists(), f"{path} missing: the release build builds it (swift build -c release)"
    return path


def test_every_module_serves_files_over_nfs(nas_bin, tmp_path):
    linux_dir = tmp_path / "linux-share"
    uring_dir = tmp_path / "uring-share"
    linux_dir.mkdir()
    uring_dir.mkdir()
    (linux_dir / "already-there.txt").write_text("from the host\n")
    demofs_config = tmp_path / "demofs.json"
    demofs_config.write_text(json.dumps({"path": str(tmp_path / "demofs.log")}))
    port = free_port()
    config = tmp_path / "nas.json"
    config.write_text(json.dumps({
        "server": {"bind": "127.0.0.1", "nfs_port": port, "smb_port": 0, "s3_port": 0, "admin_port": 0, "metrics_port": 0,
                   "threads": 2, "vfs": {"demofs": {"path": str(demofs_library(nas_bin)), "config": str(demofs_config)}}},
        "mounts": {
            "memfs": {"module": "memfs", "path": "/"},
            "linux": {"module": "linux", "path": str(linux_dir)},
            "uring": {"module": "io_uring", "path": str(uring_dir)},
            "demofs": {"module": "demofs", "path": "/"},
        },
    }))
    config.chmod(0o600)
    server = Server(nas_bin, config, tmp_path)
    try:
        assert "offline" not in server.log_text(), server.log_text()
        payload = tmp_path / "payload.bin"
        payload.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
        digest = hashlib.sha256(payload.read_bytes()).hexdigest()
        for export in ("/memfs", "/linux", "/uring", "/demofs"):
            subprocess.run(["nfs-cp", str(payload), url(port, f"{export}/payload.bin")], check=True, timeout=60, capture_output=True)
            back = tmp_path / f"back-{export[1:]}.bin"
            subprocess.run(["nfs-cp", url(port, f"{export}/payload.bin"), str(back)], check=True, timeout=60, capture_output=True)
            assert hashlib.sha256(back.read_bytes()).hexdigest() == digest, export
        # Host-directory modules write real files, and serve what was already there.
        assert hashlib.sha256((linux_dir / "payload.bin").read_bytes()).hexdigest() == digest
        assert hashlib.sha256((uring_dir / "payload.bin").read_bytes()).hexdigest() == digest
        cat = subprocess.run(["nfs-cat", url(port, "/linux/already-there.txt")], check=True, timeout=30, capture_output=True, text=True)
        assert cat.stdout == "from the host\n"
    finally:
        assert server.stop() == 0
    # demofs keeps its data in one log file across restarts.
    assert (tmp_path / "demofs.log").stat().st_size > 3 * 1024 * 1024
    server = Server(nas_bin, config, tmp_path)
    try:
        back = tmp_path / "after-restart.bin"
        subprocess.run(["nfs-cp", url(port, "/demofs/payload.bin"), str(back)], check=True, timeout=60, capture_output=True)
        assert hashlib.sha256(back.read_bytes()).hexdigest() == digest
    finally:
        assert server.stop() == 0


def test_reference_configuration_serves_what_this_machine_has(nas_bin, tmp_path):
    """The reference example starts: what is missing here (the plugin library, /share) stays
    offline with a warning, and memfs is served."""
    reference = json.loads((REPO / ".." / "shared" / "examples" / "reference-config.json").read_text())
    reference["server"].update({"bind": "127.0.0.1", "nfs_port": free_port(), "smb_port": 0, "s3_port": 0,
                                "admin_port": 0, "metrics_port": 0, "threads": 2, "delegation_threads": 4})
    reference["server"].pop("smb_multichannel", None)
    config = tmp_path / "reference.json"
    config.write_text(json.dumps(reference))
    config.chmod(0o600)
    server = Server(nas_bin, config, tmp_path)
    try:
        log = server.log_text()
        if not os.path.exists("/usr/local/lib/dmanoel-NAS_vfs_demofs.so"):
            assert "mount demofs:" in log and "offline" in log
        if not os.path.isdir("/share"):
            assert "mount linux:" in log
        assert "mount /memfs: memfs" in log
        port = reference["server"]["nfs_port"]
        listing = subprocess.run(["nfs-ls", url(port, "/memfs/")], timeout=30, capture_output=True, text=True)
        assert listing.returncode == 0, listing.stderr
    finally:
        assert server.stop() == 0


def test_nfs_handles_survive_a_restart_with_state_dir(nas_bin, tmp_path):
    from nfs_support import NFS, ROOT

    share = tmp_path / "share"
    share.mkdir()
    (share / "kept.txt").write_text("still here\n")
    port = free_port()

    def start(state_dir):
        server = {"bind": "127.0.0.1", "nfs_port": port, "smb_port": 0, "s3_port": 0, "admin_port": 0, "metrics_port": 0, "threads": 1}
        if state_dir:
            server["state_dir"] = str(state_dir)
        config = tmp_path / "nas.json"
        config.write_text(json.dumps({"server": server, "mounts": {"linux": {"module": "linux", "path": str(share)}}}))
        config.chmod(0o600)
        return Server(nas_bin, config, tmp_path)

    def handle_of_file():
        client = NFS(port, "/linux")
        try:
            found = client.lookup(client.root, "kept.txt")
            return found["resok"]["object"]["data"]
        finally:
            client.close()

    def getattr_status(handle):
        client = NFS(port, "/linux")
        try:
            return client.nfs.getattr(handle, ROOT)["status"]
        finally:
            client.close()

    state = tmp_path / "state"
    server = start(state)
    handle = handle_of_file()
    assert server.stop() == 0
    assert (state / "handle.key").stat().st_mode & 0o777 == 0o600
    server = start(state)
    try:
        assert getattr_status(handle) == 0
    finally:
        assert server.stop() == 0
    # Without state_dir the key is new at each start: old handles are refused as stale.
    server = start(None)
    try:
        assert getattr_status(handle) == 70
    finally:
        assert server.stop() == 0
