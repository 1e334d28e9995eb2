"""`dmanoel-nas serve` as an operator runs it: start, log, stop, memory, plain status lines."""

import json
import signal
import subprocess
import time

from conftest import Server, config_on_free_ports, rss_bytes, wait_for


def test_serve_starts_logs_and_stops_cleanly(nas_bin, tmp_path):
    config = config_on_free_ports(tmp_path, threads=2, poll_mode="never")
    server = Server(nas_bin, config, tmp_path)
    log = server.log_text()
    assert "2 loop thread(s) on io_uring, poll mode never" in log
    assert "topology: node 0" in log
    assert server.stop() == 0
    lines = server.log_text().splitlines()
    assert lines[-1].split()[1:] == ["INFO", "[dmanoel.server]", "stopped"]
    # One line per event: every line starts with a timestamp and a level.
    for line in lines:
        stamp, level = line.split()[:2]
        assert stamp.endswith("Z") and level in {"TRACE", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL"}, line


def test_sigint_stops_too(nas_bin, tmp_path):
    server = Server(nas_bin, config_on_free_ports(tmp_path), tmp_path)
    assert server.stop(signal.SIGINT) == 0


def test_epoll_backend_from_config(nas_bin, tmp_path):
    server = Server(nas_bin, config_on_free_ports(tmp_path, io="epoll", threads=1), tmp_path)
    try:
        assert "1 loop thread(s) on epoll" in server.log_text()
    finally:
        assert server.stop() == 0


def test_bad_config_refused_with_key_and_nothing_started(nas_bin, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"server": {"threads": "many"}, "mounts": {"m": {"module": "memfs", "path": "/"}}}))
    bad.chmod(0o600)
    result = subprocess.run([str(nas_bin), "serve", "--no-console", "--config", str(bad)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "server.threads" in result.stderr
    assert "loop thread" not in result.stderr


def test_missing_config_file_is_a_clear_error(nas_bin, tmp_path):
    result = subprocess.run([str(nas_bin), "serve", "--no-console", "--config", str(tmp_path / "nope.json")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "nope.json" in result.stderr


def test_reference_rdma_warning(nas_bin, tmp_path):
    """rdma: true on a machine without RDMA devices: one clear warning, TCP continues."""
    server = Server(nas_bin, config_on_free_ports(tmp_path, rdma=True, threads=1), tmp_path)
    try:
        warnings = [line for line in server.log_text().splitlines() if "RDMA" in line]
        assert len(warnings) == 1 and "WARNING" in warnings[0] and "TCP" in warnings[0], warnings
    finally:
        server.stop()


def test_idle_default_server_memory_under_64_mib(nas_bin, tmp_path):
    """The embedded default configuration, idle: resident memory under 64 MiB."""
    log = tmp_path / "server.log"
    proc = subprocess.Popen([str(nas_bin), "serve", "--no-console", "--log-file", str(log)])
    try:
        assert wait_for(lambda: log.exists() and "ready:" in log.read_text())
        time.sleep(1.0)
        rss = rss_bytes(proc.pid)
        print(f"idle RSS with the default configuration: {rss / 1048576:.1f} MiB")
        assert rss < 64 * 1024 * 1024, f"idle RSS {rss} bytes"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_plain_status_lines(nas_bin, tmp_path):
    config = config_on_free_ports(tmp_path, threads=2)
    proc = subprocess.Popen([str(nas_bin), "serve", "--plain", "--interval", "0.2", "--config", str(config),
                             "--log-file", str(tmp_path / "log")], stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    for line in lines:
        fields = dict(f.split("=", 1) for f in line.split())
        assert {"t", "conns", "cpu", "rss", "loop0", "loop1", "delegation"} <= fields.keys(), line
        assert fields["loop0"].split("/")[0] in {"POLL", "EVENT"}


def test_runtime_idle_connection_memory_under_64_kib(echo_bin):
    """Each idle connection on the runtime costs under 64 KiB of resident memory."""
    import socket

    proc = subprocess.Popen([str(echo_bin), "--port", "0", "--threads", "1", "--poll-mode", "never"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    clients = []
    try:
        port = int(proc.stdout.readline().strip().rsplit(":", 1)[1])
        # Warm up one connection so the first slab and the loop's tables exist.
        warm = socket.create_connection(("127.0.0.1", port))
        warm.sendall(b"x")
        assert warm.recv(1) == b"x"
        time.sleep(0.3)
        before = rss_bytes(proc.pid)
        count = 1000
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port))
            clients.append(s)
        # Every connection answers, so each is really being served.
        for s in clients:
            s.sendall(b"y")
        for s in clients:
            assert s.recv(1) == b"y"
        time.sleep(0.5)
        per_connection = (rss_bytes(proc.pid) - before) / count
        print(f"resident memory per idle connection: {per_connection / 1024:.1f} KiB")
        assert per_connection < 64 * 1024
    finally:
        for s in clients:
            s.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
