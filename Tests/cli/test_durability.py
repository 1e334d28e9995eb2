"""Stable writes are on disk before the reply leaves: NFSv3 WRITE FILE_SYNC and COMMIT, NFSv4
WRITE FILE_SYNC4 and COMMIT, SMB FLUSH, write-through WRITEs and FILE_WRITE_THROUGH opens, and a completed S3 PUT.

Killing the server with SIGKILL does not drop the page cache, so reading the data back after a
kill alone would pass even without any sync. The proof is a kernel trace of the server (ftrace,
in a private tracefs instance): the io_uring FSYNC completions and fsync/fdatasync system calls
must come before the reply is handed to the kernel. Then the server is killed right after the
replies, and the data is read from the backing directory and over a restarted server."""

import hashlib
import os
import pathlib
import re
import signal
import subprocess

import pytest

from conftest import Server
from disk_support import disk_server
from nfs4_support import NFS4, commit, getfh, open_, putfh, write
from nfs_support import NFS, ROOT
from s3_support import make_client
from smb_support import smb_create, smb_tree

TRACEFS = pathlib.Path("/sys/kernel/tracing")
EVENTS = ["io_uring/io_uring_submit_req", "io_uring/io_uring_complete", "syscalls/sys_exit_fsync",
          "syscalls/sys_exit_fdatasync", "syscalls/sys_enter_sendmsg", "syscalls/sys_enter_sendto"]
LINE = re.compile(r"^\s*(?P<comm>.+?)-(?P<tid>\d+)\s+\[\d+\].*?\s(?P<time>\d+\.\d+): (?P<body>.*)$")
# System call events print as "sys_fsync -> 0x0" (exit) and "sys_sendmsg(fd: ...)" (entry).
SYSCALL_EXIT = re.compile(r"^sys_(\w+) -> (\S+)$")
SYSCALL_ENTER = re.compile(r"^sys_(\w+)\(")


class KernelTrace:
    """io_uring submissions/completions and fsync/send system calls of one process, recorded
    in a tracefs instance of its own (other tracing on the machine is left alone)."""

    def __init__(self, pid):
        if not (TRACEFS / "events").exists():
            subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], check=True)
        self.pid = pid
        self.dir = TRACEFS / "instances" / f"dmanoel-durability-{pid}"
        self.dir.mkdir()
        (self.dir / "trace_clock").write_text("global")
        (self.dir / "buffer_size_kb").write_text("4096")
        for event in EVENTS:
            (self.dir / "events" / event / "enable").write_text("1")

    def record(self, action):
        (self.dir / "trace").write_text("")
        (self.dir / "tracing_on").write_text("1")
        try:
            action()
        finally:
            (self.dir / "tracing_on").write_text("0")
        return self.parse((self.dir / "trace").read_text())

    def parse(self, text):
        tids = {int(t) for t in os.listdir(f"/proc/{self.pid}/task")}
        events = []
        for line in text.splitlines():
            match = LINE.match(line)
            if not match:
                continue
            body, tid = match["body"], int(match["tid"])
            if body.startswith("io_uring_"):
                event, _, rest = body.partition(": ")
                events.append((event, tid, rest))
            elif exit_ := SYSCALL_EXIT.match(body):
                events.append(("sys_exit_" + exit_[1], tid, exit_[2]))
            elif enter := SYSCALL_ENTER.match(body):
                events.append(("sys_enter_" + enter[1], tid, body))
        rings = {re.search(r"ring (\S+),", rest)[1] for event, tid, rest in events
                 if event == "io_uring_submit_req" and tid in tids}
        ours = []
        for event, tid, rest in events:
            ring = re.search(r"ring (\S+),", rest)
            if event.startswith("io_uring") and ring and ring[1] in rings or not event.startswith("io_uring") and tid in tids:
                ours.append((event, rest))
        return ours

    def close(self):
        for event in EVENTS:
            (self.dir / "events" / event / "enable").write_text("0")
        self.dir.rmdir()


def syncs_before_reply(events):
    """(durable syncs finished before the last reply send, syncs after it). A sync is an io_uring
    FSYNC completion or an fsync/fdatasync system call returning 0; a reply is an io_uring SEND*
    submission or a sendmsg/sendto system call."""
    fsyncs = {}
    done, last_send = [], None
    for index, (event, rest) in enumerate(events):
        ring = re.search(r"ring (\S+),", rest)
        user_data = re.search(r"user_data (\S+),", rest)
        if event == "io_uring_submit_req":
            opcode = re.search(r"opcode (\w+)", rest)[1]
            if opcode == "FSYNC":
                fsyncs[(ring[1], user_data[1])] = index
            elif opcode.startswith("SEND"):
                last_send = index
        elif event == "io_uring_complete":
            key = (ring[1], user_data[1])
            if key in fsyncs and re.search(r"result (-?\d+)", rest)[1] == "0":
                done.append(index)
                del fsyncs[key]
        elif event in ("sys_exit_fsync", "sys_exit_fdatasync") and rest == "0x0":
            done.append(index)
        elif event in ("sys_enter_sendmsg", "sys_enter_sendto"):
            last_send = index
    assert last_send is not None, events
    return sum(1 for i in done if i < last_send), sum(1 for i in done if i > last_send)


@pytest.fixture(params=["io_uring", "linux"])
def durable(request, nas_bin, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    server = disk_server(nas_bin, tmp_path, module=request.param, threads=1, state_dir=str(state))
    server.tmp = tmp_path
    server.trace = KernelTrace(server.proc.pid)
    yield server
    server.trace.close()
    if server.proc.poll() is None:
        server.stop()


def test_stable_writes_are_synced_before_the_reply_and_survive_sigkill(durable):
    server, trace = durable, durable.trace
    data = {name: os.urandom(size) for name, size in
            (("v3-filesync", 70_000), ("v3-commit", 300_000), ("v4-filesync", 50_000), ("v4-commit", 200_000),
             ("smb-flush", 100_000), ("smb-writethrough", 60_000), ("smb-opened-writethrough", 40_000), ("s3-put", 500_000))}
    results = {}

    # NFSv3: FILE_SYNC write; UNSTABLE write then COMMIT.
    v3 = NFS(server.settings["nfs_port"], export="/disk")
    handles = {name: v3.handle(v3.create(v3.root, name)) for name in ("v3-filesync", "v3-commit")}
    body = data["v3-filesync"]
    results["v3-filesync"] = trace.record(lambda: v3.nfs.write(handles["v3-filesync"], 0, len(body), body, 2, auth=ROOT))
    body = data["v3-commit"]
    # The control: UNSTABLE writes are answered without a sync, and the trace sees that.
    unstable = trace.record(lambda: [v3.nfs.write(handles["v3-commit"], offset, len(body[offset:offset + 65536]),
                                                  body[offset:offset + 65536], 0, auth=ROOT) for offset in range(0, len(body), 65536)])
    assert syncs_before_reply(unstable) == (0, 0), unstable
    results["v3-commit"] = trace.record(lambda: v3.nfs.commit(handles["v3-commit"], auth=ROOT))

    # NFSv4.1: FILE_SYNC4 write; UNSTABLE4 write then COMMIT.
    v4 = NFS4(server.settings["nfs_port"])
    v4.session()
    root = v4.export_fh("disk")
    for name, stable in (("v4-filesync", 2), ("v4-commit", 0)):
        r = v4.seq_compound([putfh(root), open_(name, b"owner-" + name.encode(), create=True), getfh()])
        sid, fh = r[2]["stateid"], r[3]["fh"]
        if stable == 2:
            results[name] = trace.record(lambda: v4.seq_compound([putfh(fh), write(sid, 0, data[name], stable=2)]))
        else:
            assert v4.seq_compound([putfh(fh), write(sid, 0, data[name], stable=0)]).status == 0
            results[name] = trace.record(lambda: v4.seq_compound([putfh(fh), commit()]))

    # SMB: WRITE then FLUSH; a WRITE with SMB2_WRITEFLAG_WRITE_THROUGH.
    conn, tree = smb_tree(server.settings["smb_port"])
    flushed = smb_create(tree, "smb-flush")
    flushed.write(data["smb-flush"], 0)
    results["smb-flush"] = trace.record(lambda: flushed.flush())
    through = smb_create(tree, "smb-writethrough")
    results["smb-writethrough"] = trace.record(lambda: through.write(data["smb-writethrough"], 0, write_through=True))
    # A plain WRITE on an open made with FILE_WRITE_THROUGH.
    opened = smb_create(tree, "smb-opened-writethrough", write_through=True)
    results["smb-opened-writethrough"] = trace.record(lambda: opened.write(data["smb-opened-writethrough"], 0))

    # S3: a PUT (the file, then its directory after the rename).
    s3 = make_client(f"http://127.0.0.1:{server.settings['s3_port']}")
    results["s3-put"] = trace.record(lambda: s3.put_object(Bucket="bucket", Key="s3-put", Body=data["s3-put"]))

    # Killed right after the last reply: nothing gets a chance to flush later.
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=10)

    for name, events in results.items():
        before, after = syncs_before_reply(events)
        wanted = 2 if name == "s3-put" else 1
        print(f"{name}: {before} sync(s) done before the reply, {after} after")
        assert before >= wanted, f"{name}: {before} sync(s) before the reply, {after} after: {events}"
    for name, body in data.items():
        assert hashlib.sha256((server.disk / name).read_bytes()).digest() == hashlib.sha256(body).digest(), name

    # A restarted server (same handle key) serves what was acknowledged.
    restarted = Server(server.proc.args[0], server.config, server.tmp)
    try:
        v3 = NFS(server.settings["nfs_port"], export="/disk")
        got = v3.nfs.read(handles["v3-commit"], 0, len(data["v3-commit"]), auth=ROOT)
        assert got["status"] == 0 and got["resok"]["data"] == data["v3-commit"]
        v3.close()
        s3 = make_client(f"http://127.0.0.1:{server.settings['s3_port']}")
        got = s3.get_object(Bucket="bucket", Key="s3-put")
        assert got["Body"].read() == data["s3-put"]
        assert got["ETag"] == '"' + hashlib.md5(data["s3-put"]).hexdigest() + '"'
    finally:
        assert restarted.stop() == 0
