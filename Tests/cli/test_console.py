"""The live console in a real terminal (tmux): what an operator sees and what the keys do."""

import re
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import config_on_free_ports, wait_for


class Tmux:
    def __init__(self, command, width=100, height=30):
        assert shutil.which("tmux"), "tmux is missing: scripts/bootstrap installs it"
        self.name = "nas-" + uuid.uuid4().hex[:8]
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
                        "bash", "--norc", "--noprofile"], check=True, env={"TERM": "xterm-256color", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        self.type(command + "\n")

    def type(self, keys):
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", keys], check=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], check=True,
                              capture_output=True, text=True).stdout

    def resize(self, width, height):
        subprocess.run(["tmux", "resize-window", "-t", self.name, "-x", str(width), "-y", str(height)], check=True)

    def close(self):
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


@pytest.fixture
def console(nas_bin, tmp_path):
    config = config_on_free_ports(tmp_path, threads=2, poll_mode="auto")
    term = Tmux(f"{nas_bin} serve --console --interval 0.2 --config {config}; echo EXITED=$?; "
                "stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(echo|icanon)' | tr '\\n' ' '; echo")
    yield term
    term.close()


def thread_rows(screen):
    rows = []
    for line in screen.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0].isdigit() and fields[3] in ("POLL", "EVENT"):
            rows.append(fields)
    return rows


def test_console_shows_threads_and_tunes_poll_mode(console):
    assert wait_for(lambda: "── Threads" in console.screen())
    screen = console.screen()
    assert "dmanoel-NAS" in screen and "config " in screen
    # Idle loops in auto mode fall asleep: EVENT.
    assert wait_for(lambda: [r[3] for r in thread_rows(console.screen())] == ["EVENT", "EVENT"]), console.screen()
    # 'p' switches every loop to poll_mode always: they spin, POLL, and the change is logged.
    console.type("p")
    assert wait_for(lambda: [r[3] for r in thread_rows(console.screen())] == ["POLL", "POLL"]), console.screen()
    assert wait_for(lambda: "tuning: poll_mode always (all loops)" in console.screen())
    assert "poll_mode always" in console.screen()
    # Back to never: asleep again.
    console.type("p")
    assert wait_for(lambda: "poll_mode never" in console.screen())
    assert wait_for(lambda: [r[3] for r in thread_rows(console.screen())] == ["EVENT", "EVENT"])
    # '+' doubles the spin time.
    console.type("+")
    assert wait_for(lambda: "spin 100µs" in console.screen()), console.screen()


def test_console_fits_80x24_resizes_and_restores_the_terminal(console):
    assert wait_for(lambda: "── Threads" in console.screen())
    console.resize(80, 24)
    assert wait_for(lambda: len(console.screen().splitlines()) <= 24 and "q quit" in console.screen().splitlines()[-1])
    screen = console.screen()
    assert all(len(line) <= 80 for line in screen.splitlines())
    assert len(thread_rows(screen)) == 2
    console.type("h")
    assert wait_for(lambda: "poll mode for all loops" in console.screen())
    console.type("h")
    console.type("q")
    assert wait_for(lambda: "EXITED=0" in console.screen()), console.screen()
    # The terminal is back in cooked mode with echo on.
    def flags():
        after = console.screen().split("EXITED=0", 1)[1].splitlines()
        return len(after) > 1 and set(after[1].split()) == {"echo", "icanon"}
    assert wait_for(flags), console.screen()


def test_console_under_nfs_load_shows_poll_and_nfs_rates(nas_bin, tmp_path):
    """With NFS traffic the loops poll and the NFSv3 row shows a rate and latencies; idle again,
    the loops sleep."""
    import threading

    from nfs_support import NFS, ROOT, nfs_config

    config, port = nfs_config(tmp_path, threads=1, spin_ns=5_000_000)
    term = Tmux(f"{nas_bin} serve --console --interval 0.3 --config {config}", width=100, height=32)
    stop = threading.Event()
    calls = []

    def load():
        client = NFS(port)
        try:
            while not stop.is_set():
                client.nfs.getattr(client.root, ROOT)
                calls.append(1)
        finally:
            client.close()

    try:
        assert wait_for(lambda: [r[3] for r in thread_rows(term.screen())] == ["EVENT"]), term.screen()
        worker = threading.Thread(target=load)
        worker.start()
        try:
            def nfs_row():
                for line in term.screen().splitlines():
                    fields = line.split()
                    if fields and fields[0] == "NFSv3" and len(fields) >= 4 and fields[1] != "0":
                        return fields
                return None
            row = wait_for(nfs_row, timeout=20)
            assert row, term.screen()
            assert row[3] != "-", f"no p50 latency in {row}"
            assert wait_for(lambda: [r[3] for r in thread_rows(term.screen())] == ["POLL"]), term.screen()
        finally:
            stop.set()
            worker.join()
        assert len(calls) > 100
        assert wait_for(lambda: [r[3] for r in thread_rows(term.screen())] == ["EVENT"]), term.screen()
        term.type("q")
    finally:
        term.close()


def test_console_history_sort_save_and_thread_refusal(nas_bin, tmp_path):
    """Scroll back through history, sort operations, write tuning to the config file with `w`,
    and an honest refusal for changing the loop count; a trend column on wide terminals."""
    import json

    from nfs_support import NFS, ROOT, nfs_config

    config, port = nfs_config(tmp_path, threads=2)
    term = Tmux(f"{nas_bin} serve --console --interval 0.2 --config {config}", width=120, height=36)
    try:
        assert wait_for(lambda: "── Threads" in term.screen()), term.screen()
        client = NFS(port)
        try:
            for _ in range(200):
                client.nfs.getattr(client.root, ROOT)
        finally:
            client.close()
        assert wait_for(lambda: "TREND" in term.screen() and any(line.split()[:1] == ["NFSv3"] for line in term.screen().splitlines()))
        nfs_line = next(line for line in term.screen().splitlines() if line.split()[:1] == ["NFSv3"])
        assert any(block in nfs_line for block in "▁▂▃▄▅▆▇█"), nfs_line
        # History: left arrow pauses and steps back; End returns to live. (Let a few frames
        # accumulate first: one every 0.2 s.)
        assert wait_for(lambda: re.search(r"up 00:00:0[2-9]", term.screen()), timeout=10)
        term.type("<")
        assert wait_for(lambda: "HISTORY -1" in term.screen()), term.screen()
        term.type("<<")
        assert wait_for(lambda: "HISTORY -3" in term.screen()), term.screen()
        term.type(">")
        assert wait_for(lambda: "HISTORY -2" in term.screen())
        term.type(" ")
        assert wait_for(lambda: "HISTORY" not in term.screen())
        # Sort cycles and says so.
        term.type("e")
        term.type("s")
        assert wait_for(lambda: "s: sort (ops/s)" in term.screen()), term.screen()
        # The loop count cannot change live: refused, with the way to do it.
        term.type("T")
        assert wait_for(lambda: "cannot change while the server runs" in term.screen()), term.screen()
        # Tuning goes live, then `w` writes it into the configuration file.
        term.type("p")
        assert wait_for(lambda: "poll_mode always" in term.screen())
        term.type("w")
        assert wait_for(lambda: json.loads(config.read_text())["server"].get("poll_mode") == "always"), config.read_text()
        saved = json.loads(config.read_text())["server"]
        assert saved["spin_ns"] == 50000 and saved["delegation_threads"] >= 1
        assert (config.stat().st_mode & 0o777) == 0o600
        subprocess.run([str(nas_bin), "config", "check", str(config)], check=True, capture_output=True)
        term.type("q")
    finally:
        term.close()


def test_console_under_s3_load_shows_s3_rates(nas_bin, tmp_path):
    """S3 traffic from boto3 lights up the S3 row with a rate and latencies."""
    import threading

    from s3_support import make_client, s3_config

    config, settings = s3_config(tmp_path)
    bucket = next(iter(__import__("json").loads(config.read_text())["buckets"]))
    term = Tmux(f"{nas_bin} serve --console --interval 0.3 --config {config}", width=100, height=32)
    stop = threading.Event()
    count = []

    def load():
        client = make_client(f"http://127.0.0.1:{settings['s3_port']}")
        while not stop.is_set():
            client.put_object(Bucket=bucket, Key="console/x", Body=b"x" * 1000)
            client.get_object(Bucket=bucket, Key="console/x")["Body"].read()
            count.append(1)

    try:
        assert wait_for(lambda: "── Threads" in term.screen()), term.screen()
        worker = threading.Thread(target=load)
        worker.start()
        try:
            def s3_row():
                for line in term.screen().splitlines():
                    fields = line.split()
                    if fields[:1] == ["S3"] and len(fields) >= 4 and fields[1] != "0" and fields[3] != "-":
                        return fields
                return None
            assert wait_for(s3_row, timeout=20), term.screen()
            term.type("e")
            assert wait_for(lambda: any(line.split()[:1] == ["PutObject"] for line in term.screen().splitlines())), term.screen()
        finally:
            stop.set()
            worker.join()
        assert len(count) > 5
        term.type("q")
    finally:
        term.close()


def test_console_under_smb_load_shows_smb_rates(nas_bin, tmp_path):
    """smbclient traffic lights up the SMB row with a rate and latencies."""
    import json
    import subprocess
    import threading

    from conftest import free_port

    smb_port = free_port()
    config = tmp_path / "nas.json"
    config.write_text(json.dumps({
        "server": {"bind": "127.0.0.1", "nfs_port": 0, "smb_port": smb_port, "s3_port": 0, "admin_port": 0, "metrics_port": 0},
        "mounts": {"memfs": {"module": "memfs", "path": "/"}},
        "shares": {"files": {"path": "/memfs"}},
        "users": {"nas": {"password": "naspassword", "uid": 1000, "gid": 1000}}}))
    config.chmod(0o600)
    (tmp_path / "f.bin").write_bytes(b"z" * 200_000)
    term = Tmux(f"{nas_bin} serve --console --interval 0.3 --config {config}", width=100, height=32)
    stop = threading.Event()

    def load():
        while not stop.is_set():
            subprocess.run(["smbclient", "-p", str(smb_port), "//127.0.0.1/files", "-U", "nas%naspassword", "-m", "SMB3_11",
                            "-c", "put f.bin f.bin; get f.bin g.bin; ls"], cwd=tmp_path, capture_output=True, timeout=30)

    try:
        assert wait_for(lambda: "── Threads" in term.screen()), term.screen()
        worker = threading.Thread(target=load)
        worker.start()
        try:
            def smb_row():
                for line in term.screen().splitlines():
                    fields = line.split()
                    if fields[:1] == ["SMB"] and len(fields) >= 4 and fields[1] != "0" and fields[3] != "-":
                        return fields
                return None
            assert wait_for(smb_row, timeout=30), term.screen()
        finally:
            stop.set()
            worker.join()
        term.type("q")
    finally:
        term.close()


def test_console_stops_when_its_terminal_goes_away(nas_bin, tmp_path):
    """Killing the terminal (SIGHUP to the foreground server) stops a console server: SIGHUP
    means "read the configuration again" only for a server without a console."""
    config = config_on_free_ports(tmp_path, threads=1)
    term = Tmux(f"exec {nas_bin} serve --console --interval 0.2 --config {config}")
    try:
        assert wait_for(lambda: "NFSv3" in term.screen() or "loop" in term.screen().lower()), term.screen()
        pids = subprocess.run(["pgrep", "-f", f"serve --console --interval 0.2 --config {config}"],
                              capture_output=True, text=True).stdout.split()
        assert len(pids) == 1, pids
    finally:
        term.close()
    stopped = wait_for(lambda: subprocess.run(["kill", "-0", pids[0]], capture_output=True).returncode != 0, timeout=10)
    if not stopped:
        subprocess.run(["kill", "-9", pids[0]], capture_output=True)
    assert stopped, "the console server outlived its terminal"
