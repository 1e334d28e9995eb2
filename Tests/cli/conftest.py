"""Shared fixtures for the end-to-end tests: the real binaries, free ports, running servers."""

import os
import pathlib
import signal
import socket
import subprocess
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def _binary(env_name: str, default: str) -> pathlib.Path:
    path = pathlib.Path(os.environ.get(env_name, default))
    path = path if path.is_absolute() else REPO / path
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not an executable: run scripts/test (it builds it) or set {env_name}")
    return path


@pytest.fixture(scope="session")
def nas_bin() -> pathlib.Path:
    return _binary("DMANOEL_NAS_BIN", ".build/release/dmanoel-nas")


@pytest.fixture(scope="session")
def echo_bin() -> pathlib.Path:
    return _binary("DMANOEL_ECHO_BIN", ".build/release/runtime-echo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_on_free_ports(tmp_path, **server) -> pathlib.Path:
    """A memfs configuration whose ports are all free right now."""
    import json

    settings = {
        "bind": "127.0.0.1",
        "nfs_port": free_port(),
        "smb_port": free_port(),
        "s3_port": free_port(),
        "admin_port": free_port(),
        "metrics_port": free_port(),
    }
    settings.update(server)
    path = tmp_path / "nas.json"
    path.write_text(json.dumps({"server": settings, "mounts": {"memfs": {"module": "memfs", "path": "/"}}}))
    path.chmod(0o600)
    return path


def wait_for(predicate, timeout=15.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def rss_bytes(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Server:
    """A `dmanoel-nas serve --no-console` process whose log goes to a file."""

    starts = 0

    def __init__(self, nas_bin, config, tmp_path, *extra):
        # A fresh log per start, so "ready:" from an earlier run is never mistaken for this one.
        Server.starts += 1
        self.log = tmp_path / f"server-{Server.starts}.log"
        self.proc = subprocess.Popen(
            [str(nas_bin), "serve", "--no-console", "--config", str(config), "--log-file", str(self.log), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if not wait_for(lambda: self.log.exists() and "ready:" in self.log.read_text() or self.proc.poll() is not None):
            self.stop()
            raise AssertionError("server did not become ready")
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited early: {self.proc.stderr.read()}")

    def log_text(self) -> str:
        return self.log.read_text()

    def stop(self, sig=signal.SIGTERM, timeout=15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("server did not stop on SIGTERM")
