"""A server over a host directory: an io_uring mount "disk" (tmp_path/disk) served as NFS
export /disk, SMB share "share", S3 bucket "bucket", with user nas (password secret1, the S3
test keys, uid 0), on free ports. For the fault, lifecycle and durability tests."""

import json

from conftest import Server, free_port
from s3_support import ACCESS_KEY, SECRET_KEY


def disk_server(nas_bin, tmp_path, module="io_uring", **server):
    """Starts it (`module`: io_uring or linux); `server` overrides settings. The returned Server
    has `settings`, `disk` and `config` (the file, which tests may rewrite)."""
    disk = tmp_path / "disk"
    disk.mkdir(exist_ok=True)
    settings = {"bind": "127.0.0.1", "nfs_port": free_port(), "smb_port": free_port(), "s3_port": free_port(),
                "admin_port": free_port(), "metrics_port": 0, "threads": 2}
    settings.update(server)
    config = tmp_path / "nas.json"
    config.write_text(json.dumps({
        "server": settings,
        "mounts": {"disk": {"module": module, "path": str(disk)}},
        "shares": {"share": {"path": "/disk"}},
        "buckets": {"bucket": {"path": "/disk"}},
        "users": {"nas": {"password": "secret1", "uid": 0, "gid": 0, "s3_access_key": ACCESS_KEY, "s3_secret_key": SECRET_KEY}},
    }))
    config.chmod(0o600)
    running = Server(nas_bin, config, tmp_path)
    running.settings, running.disk, running.config = settings, disk, config
    return running
