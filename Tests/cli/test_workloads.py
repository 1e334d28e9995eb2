"""`dmanoel-nas run` and `dmanoel-nas report` end to end: every shipped workload runs for about a
second against a real server (NFSv3, NFSv4.1, SMB and S3 on free ports), its result file must show
operations and no errors, and the report's table must carry the result file's numbers."""

import json
import pathlib
import re
import subprocess

import pytest

from conftest import REPO, Server
from s3_support import ACCESS_KEY, BUCKET, SECRET_KEY, s3_config

WORKLOADS = sorted((REPO / "Workloads").glob("*.yaml"))


@pytest.fixture(scope="module")
def server(nas_bin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("workloads")
    # The s3 bucket is the memfs mount, which NFS exports as /memfs.
    config, settings = s3_config(tmp, buckets={BUCKET: {"path": "/memfs"}}, nfs4_grace_seconds=0)
    data = json.loads(config.read_text())
    data["shares"] = {"memfs": {"path": "/memfs"}}
    config.write_text(json.dumps(data))
    srv = Server(nas_bin, config, tmp)
    srv.settings = settings
    yield srv
    srv.stop()


def url(protocol: str, settings, query: str = "") -> str:
    """Our server as a target of `protocol` (nfs3, nfs4, smb, s3)."""
    return {
        "nfs3": f"nfs3://127.0.0.1:{settings['nfs_port']}/memfs",
        "nfs4": f"nfs4://127.0.0.1:{settings['nfs_port']}/memfs",
        "smb": f"smb://nas:nas@127.0.0.1:{settings['smb_port']}/memfs{query}",
        "s3": f"s3://{ACCESS_KEY}:{SECRET_KEY}@127.0.0.1:{settings['s3_port']}/{BUCKET}",
    }[protocol]


def target_for(workload: pathlib.Path, settings) -> str:
    return url("s3" if workload.name.startswith("s3") else "nfs3", settings)


def target_args(workload: pathlib.Path, settings) -> list:
    """--target options replacing the file's targets (every protocol it names, in order)."""
    text = workload.read_text()
    found = sorted((m.start(), m.group(1)) for m in re.finditer(r"(?<![a-z0-9])(nfs3|nfs4|smb|s3)://", text))
    protocols = list(dict.fromkeys(p for _, p in found))
    return [a for p in protocols for a in ("--target", url(p, settings))]


def run(nas_bin, *args, timeout=60):
    return subprocess.run([str(nas_bin), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def read_results(path: pathlib.Path):
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert lines[0]["type"] == "run"
    return lines


def check_shipped_run(nas_bin, server, tmp_path, workload, targets, extra=()):
    out = tmp_path / "out"
    replay = "kind: replay" in workload.read_text()
    shorten = [] if replay else ["--duration", "1", "--set", "phases.warmup.duration=300ms"]
    result = run(nas_bin, "run", workload, *targets, *shorten, *extra, "--output", out)
    assert result.returncode == 0, result.stderr
    lines = read_results(out / "results.jsonl")
    phases = [l for l in lines if l["type"] == "phase"]
    if replay:
        assert [p["kind"] for p in phases] == ["prepare", "replay", "replay", "cleanup"]
    else:
        assert [p["kind"] for p in phases] == ["prepare", "warmup", "measure", "cleanup"]
    measure = [l for l in lines if l["type"] == "op" and l["kind"] in ("measure", "replay")]
    assert measure, lines
    for op in measure:
        assert op["count"] > 0, op
        assert op["errors"] == 0, (op["op"], op["error_codes"], op["count"], result.stderr, server.log_text()[-1500:])
        assert sum(c for _, c in op["buckets"]) == op["count"]
        assert op["p50_us"] <= op["p99_us"] <= op["max_us"]
        if not replay:
            # The phase ends when its last operations do: 1 MiB ones take a while on a loaded machine.
            assert 0.8 < op["seconds"] < 2.5
    # Prepare and cleanup must succeed too (the data set is made and removed again).
    for p in phases:
        assert p["errors"] == 0, [(l["op"], l["error_codes"]) for l in lines if l["type"] == "op" and l["errors"]]
    assert "results:" in result.stdout

    report = run(nas_bin, "report", out)
    assert report.returncode == 0, report.stderr
    rows = {}
    phase = None
    for line in report.stdout.splitlines():
        if line.startswith("### Phase "):
            phase = line.split()[2]
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 11 and cells[0] in {op["op"] for op in measure}:
            rows[(phase, cells[0], cells[1])] = cells
    assert set(rows) == {(op["phase"], op["op"], op["target"]) for op in measure}, report.stdout
    for op in measure:
        cells = rows[(op["phase"], op["op"], op["target"])]
        assert int(cells[2]) == op["count"]
        assert float(cells[3]) == pytest.approx(op["ops_per_s"], abs=0.1)
        assert float(cells[4]) == pytest.approx(op["mb_per_s"], abs=0.01)
        for cell, key in zip(cells[5:10], ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"]):
            assert float(cell) == pytest.approx(op[key], rel=0.01, abs=0.1), (key, cells)
        assert cells[10] == "0"
    return lines


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda p: p.stem)
def test_shipped_workload_runs_without_errors_and_reports(nas_bin, server, tmp_path, workload):
    check_shipped_run(nas_bin, server, tmp_path, workload, target_args(workload, server.settings))


FILE_WORKLOADS = [w for w in WORKLOADS if w.name.startswith(("nfs-", "file-", "trace-"))]


@pytest.mark.parametrize("protocol", ["nfs4", "smb"])
@pytest.mark.parametrize("workload", FILE_WORKLOADS, ids=lambda p: p.stem)
def test_file_workloads_run_over_nfs4_and_smb(nas_bin, server, tmp_path, workload, protocol):
    # A tree of each run's own (the NFS clients create as root, so a tree an NFS run left
    # behind would refuse the SMB user).
    lines = check_shipped_run(nas_bin, server, tmp_path, workload, ["--target", url(protocol, server.settings)],
                              extra=["--set", f"dataset.root=t-{workload.stem}-{protocol}"])
    assert {l["protocol"] for l in lines if l["type"] == "op"} == {protocol}


@pytest.mark.parametrize("query", ["?sign=1&dialect=2.1", "?encrypt=1&dialect=3.0", "?sign=1&dialect=3.0.2", "?sign=1&dialect=3.1.1",
                                   "?encrypt=1&dialect=3.1.1"])
def test_smb_client_signs_and_encrypts_every_dialect(nas_bin, server, tmp_path, query):
    """The whole vocabulary over each dialect with signing (responses' signatures checked: a bad
    one would count as error -6) or encryption; the server would refuse unsigned or unsealed
    requests on such sessions, so every operation succeeding is the evidence."""
    workload = REPO / "Workloads" / "file-ops-mix.yaml"
    out = tmp_path / "out"
    result = run(nas_bin, "run", workload, "--target", url("smb", server.settings, query), "--duration", "0.5",
                 "--set", "phases.warmup.duration=100ms", "--output", out, "--quiet")
    assert result.returncode == 0, result.stderr
    lines = read_results(out / "results.jsonl")
    assert lines[0]["targets"][0].endswith(query), lines[0]
    ops = [l for l in lines if l["type"] == "op" and l["kind"] == "measure"]
    assert {o["op"] for o in ops} >= {"read", "write", "create", "rename", "setattr", "lock", "commit", "remove", "readdir"}
    assert all(o["errors"] == 0 and o["count"] > 0 for o in ops), [(o["op"], o["error_codes"]) for o in ops if o["errors"]]


def test_smb_wrong_password_and_missing_share_fail_cleanly(nas_bin, server, tmp_path):
    workload = REPO / "Workloads" / "nfs-4k-random-read.yaml"
    port = server.settings["smb_port"]
    result = run(nas_bin, "run", workload, "--target", f"smb://nas:wrong@127.0.0.1:{port}/memfs", "--output", tmp_path / "a")
    assert result.returncode == 1
    assert "SESSION_SETUP (authenticate) failed (NTSTATUS 0xC000006D)" in result.stderr, result.stderr
    result = run(nas_bin, "run", workload, "--target", f"smb://nas:nas@127.0.0.1:{port}/nosuch", "--output", tmp_path / "b")
    assert result.returncode == 1
    assert "TREE_CONNECT \\\\127.0.0.1\\nosuch failed (NTSTATUS 0xC00000CC)" in result.stderr, result.stderr


def test_nfs4_client_names_a_missing_path(nas_bin, server, tmp_path):
    result = run(nas_bin, "run", REPO / "Workloads" / "nfs-4k-random-read.yaml", "--target",
                 f"nfs4://127.0.0.1:{server.settings['nfs_port']}/nosuch", "--output", tmp_path / "out")
    assert result.returncode == 1
    assert "looking up /nosuch failed (status 2)" in result.stderr, result.stderr



def test_report_compares_runs_and_writes_html(nas_bin, server, tmp_path):
    workload = REPO / "Workloads" / "nfs-4k-random-read.yaml"
    target = target_for(workload, server.settings)
    for name in ("a", "b"):
        result = run(nas_bin, "run", workload, "--target", target, "--duration", "0.5", "--output", tmp_path / name, "--quiet",
                     "--interval", "0.1")
        assert result.returncode == 0, result.stderr
    md = run(nas_bin, "report", tmp_path / "a", tmp_path / "b" / "results.jsonl", "--label", "first", "--label", "second")
    assert md.returncode == 0, md.stderr
    assert "## Comparison" in md.stdout
    row = next(l for l in md.stdout.splitlines() if l.startswith("| measure | read |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    a = next(l for l in read_results(tmp_path / "a" / "results.jsonl") if l["type"] == "op" and l["kind"] == "measure")
    b = next(l for l in read_results(tmp_path / "b" / "results.jsonl") if l["type"] == "op" and l["kind"] == "measure")
    assert float(cells[2]) == pytest.approx(a["ops_per_s"], abs=0.1)
    assert float(cells[4]) == pytest.approx(b["ops_per_s"], abs=0.1)
    assert float(cells[6]) == pytest.approx(b["ops_per_s"] / a["ops_per_s"], abs=0.01)

    html_path = tmp_path / "report.html"
    html = run(nas_bin, "report", tmp_path / "a", tmp_path / "b", "--format", "html", "--output", html_path)
    assert html.returncode == 0, html.stderr
    text = html_path.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text
    # One percentile ladder per run and op, one ops/s-over-time line per run's measure phase.
    assert text.count("<polyline") == 4 and "Operations per second over time" in text
    # Every plot must be well-formed SVG (test_html_report_plots_render_in_headless_chromium draws them).
    import xml.dom.minidom
    for svg in re.findall(r"<svg.*?</svg>", text, re.S):
        xml.dom.minidom.parseString(svg)
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_both_protocols_in_one_run(nas_bin, server, tmp_path):
    s = server.settings
    workload = tmp_path / "both.yaml"
    workload.write_text(f"""
name: both
targets:
  - nfs3://127.0.0.1:{s['nfs_port']}/memfs
  - s3://{ACCESS_KEY}:{SECRET_KEY}@127.0.0.1:{s['s3_port']}/{BUCKET}
dataset: {{root: both, depth: 1, width: 2, files_per_dir: 4, file_size: 8KiB}}
mix:
  - {{op: read, percent: 80, size: 4KiB}}
  - {{op: stat, percent: 20}}
phases:
  - kind: prepare
  - {{kind: measure, operations: 400, in_flight: 4}}
  - kind: cleanup
""")
    out = tmp_path / "out"
    result = run(nas_bin, "run", workload, "--output", out, "--quiet")
    assert result.returncode == 0, result.stderr
    ops = [l for l in read_results(out / "results.jsonl") if l["type"] == "op" and l["kind"] == "measure"]
    assert {o["protocol"] for o in ops} == {"nfs3", "s3"}
    for proto in ("nfs3", "s3"):
        assert sum(o["count"] for o in ops if o["protocol"] == proto) == 400
    assert all(o["errors"] == 0 for o in ops), ops


@pytest.mark.parametrize("text, where", [
    ("name: x\nphases:\n  - kind: measure\n    duration: soon\n    mix: [{op: read}]\n", "bad.yaml:4: phases[0].duration: expected a duration"),
    ("name: x\nphases:\n  - {kind: measure, duration: 1s, mix: [{op: reed}]}\n", "bad.yaml:3: phases[0].mix[0].op: unknown operation 'reed'"),
    ("name: x\n  indented: wrong\n", "bad.yaml:2: unexpected indentation"),
    ("targets: [ftp://x/y]\nphases: []\n", "bad.yaml:1: targets[0]: target 'ftp://x/y': unknown scheme 'ftp'"),
    ("targets: [smb://x/y]\nphases: []\n", "bad.yaml:1: targets[0]: target 'smb://x/y': SMB needs USER:PASS@ before the host"),
    ("targets: ['smb://u:p@x/y?dialect=2.1&encrypt=1']\nphases: []\n", "encryption needs dialect 3.0 or later"),
    ("targets: ['smb://u:p@x/y?sign=yes']\nphases: []\n", "sign must be 0 or 1, found 'yes'"),
])
def test_bad_workload_names_line_and_key(nas_bin, tmp_path, text, where):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = run(nas_bin, "run", bad, "--target", "nfs3://127.0.0.1:9/x", "--output", tmp_path / "out")
    assert result.returncode == 1
    assert where in result.stderr.replace(str(tmp_path) + "/", ""), result.stderr
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_unreachable_target_fails_cleanly(nas_bin, tmp_path):
    from conftest import free_port
    port = free_port()
    result = run(nas_bin, "run", REPO / "Workloads" / "nfs-4k-random-read.yaml", "--target", f"nfs3://127.0.0.1:{port}/memfs",
                 "--output", tmp_path / "out")
    assert result.returncode == 1
    assert "connect 127.0.0.1" in result.stderr and "refused" in result.stderr.lower(), result.stderr


def test_report_of_a_missing_file_fails(nas_bin, tmp_path):
    result = run(nas_bin, "report", tmp_path / "nothing")
    assert result.returncode == 1
    assert "cannot read" in result.stderr


def test_overrides_rate_limit_and_progress_lines(nas_bin, server, tmp_path):
    workload = REPO / "Workloads" / "nfs-metadata-mix.yaml"
    out = tmp_path / "out"
    result = run(nas_bin, "run", workload, "--target", target_for(workload, server.settings), "--output", out,
                 "--set", "phases.measure.duration=1.5s", "--set", "phases.warmup.duration=200ms",
                 "--set", "phases.measure.rate=400", "--interval", "0.5")
    assert result.returncode == 0, result.stderr
    lines = read_results(out / "results.jsonl")
    measure = next(l for l in lines if l["type"] == "phase" and l["kind"] == "measure")
    assert 1.4 < measure["seconds"] < 2.0
    # 400 ops/s for 1.5 s, paced per slot: about 600 operations, never a burst far above.
    assert 480 <= measure["count"] <= 640, measure
    assert measure["errors"] == 0
    samples = [l for l in lines if l["type"] == "interval" and l["phase"] == "measure"]
    assert len(samples) >= 2
    assert [s["count"] for s in samples] == sorted(s["count"] for s in samples)
    assert samples[-1]["count"] <= measure["count"]
    progress = [l for l in result.stdout.splitlines() if l.startswith("  measure ")]
    assert len(progress) >= 2, result.stdout
    assert re.match(r"  measure \d+\.\d/1\.5 s: \d+ ops/s now, \d+ avg, [\d.]+ MB/s, 0 errors", progress[0]), progress


def test_ctrl_c_keeps_what_was_measured_and_cleans_up(nas_bin, server, tmp_path):
    import signal
    import time
    workload = REPO / "Workloads" / "nfs-4k-random-read.yaml"
    out = tmp_path / "out"
    proc = subprocess.Popen([str(nas_bin), "run", str(workload), "--target", target_for(workload, server.settings),
                             "--duration", "30", "--output", str(out), "--interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait until the measure phase reports progress, then interrupt it.
    deadline = time.monotonic() + 20
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen += line
        if line.startswith("  measure "):
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "stopped by SIGINT" in stdout
    lines = read_results(out / "results.jsonl")
    phases = {l["kind"]: l for l in lines if l["type"] == "phase"}
    assert phases["measure"]["interrupted"] is True
    assert phases["measure"]["seconds"] < 10
    assert phases["measure"]["count"] > 0
    assert phases["cleanup"]["errors"] == 0 and phases["cleanup"]["count"] > 0


def test_report_csv_rows_match_the_result_file(nas_bin, server, tmp_path):
    import csv
    import io
    workload = REPO / "Workloads" / "nfs-metadata-mix.yaml"
    out = tmp_path / "out"
    assert run(nas_bin, "run", workload, "--target", target_for(workload, server.settings), "--duration", "0.5",
               "--output", out, "--quiet").returncode == 0
    report = run(nas_bin, "report", out, "--format", "csv")
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader(io.StringIO(report.stdout)))
    ops = [l for l in read_results(out / "results.jsonl") if l["type"] == "op"]
    assert len(rows) == len(ops)
    for row, op in zip(rows, ops):
        assert (row["phase"], row["op"], int(row["count"]), int(row["errors"])) == (op["phase"], op["op"], op["count"], op["errors"])
        assert float(row["p99_us"]) == pytest.approx(op["p99_us"], abs=0.01)


@pytest.mark.skipif(__import__("shutil").which("weed") is None, reason="SeaweedFS (`weed`) not installed: scripts/bootstrap --bench")
def test_s3_client_interoperates_with_seaweedfs(nas_bin, tmp_path):
    from s3_support import SeaweedS3
    weed = SeaweedS3(tmp_path)
    try:
        out = tmp_path / "out"
        result = run(nas_bin, "run", REPO / "Workloads" / "s3-small-object-mix.yaml", "--target",
                     f"s3://{ACCESS_KEY}:{SECRET_KEY}@127.0.0.1:{weed.port}/{BUCKET}", "--duration", "1",
                     "--set", "phases.warmup.duration=200ms", "--output", out, "--quiet", timeout=90)
        assert result.returncode == 0, result.stderr
        lines = read_results(out / "results.jsonl")
        for phase in (l for l in lines if l["type"] == "phase"):
            assert phase["errors"] == 0 and phase["count"] > 0, phase
    finally:
        weed.stop()


def test_dbench_load_file_converts_and_replays(nas_bin, server, tmp_path):
    # A few lines in dbench 4's load-file format (the real one: /usr/share/dbench/client.txt).
    load = tmp_path / "client.txt"
    load.write_text("\n".join([
        'Deltree "\\clients\\client1" NT_STATUS_OK',
        'Mkdir "\\clients" NT_STATUS_OK',
        'NTCreateX "\\clients\\client1" 0x1 0x2 16385 NT_STATUS_OK',
        'Close 16385 NT_STATUS_OK',
        'NTCreateX "\\clients\\client1\\mixfile" 0x40 0x1 9935 NT_STATUS_OBJECT_NAME_NOT_FOUND',
        'NTCreateX "\\clients\\client1\\a.doc" 0x40 0x5 9938 NT_STATUS_OK',
        'WriteX 9938 0 65536 65536 NT_STATUS_OK',
        'ReadX 9938 0 4096 4096 NT_STATUS_OK',
        'QUERY_FILE_INFORMATION 9938 258 NT_STATUS_OK',
        'Flush 9938 NT_STATUS_OK',
        'Close 9938 NT_STATUS_OK',
        'QUERY_PATH_INFORMATION "\\clients\\client1\\a.doc" 1004 NT_STATUS_OK',
        'FIND_FIRST "\\clients\\client1\\*" 260 1366 0 NT_STATUS_OK',
        'Rename "\\clients\\client1\\a.doc" "\\clients\\client1\\b.doc" NT_STATUS_OK',
        'Unlink "\\clients\\client1\\a.doc" 0x6 NT_STATUS_OK',
    ]) + "\n")
    trace = tmp_path / "client.trace"
    conv = run(nas_bin, "trace", "from-dbench", load, "--output", trace)
    assert conv.returncode == 0, conv.stderr
    assert "10 operations; left out: Deltree ×1, Mkdir ×1, Rename ×1" in conv.stderr
    ops = [l for l in trace.read_text().splitlines() if not l.startswith("#")]
    assert ops == ["mkdir client1 !any", "lookup client1/mixfile !noent", "create client1/a.doc",
                   "write client1/a.doc 0 65536", "read client1/a.doc 0 4096", "stat client1/a.doc !any",
                   "commit client1/a.doc !any", "stat client1/a.doc", "readdir client1 !any", "remove client1/a.doc"]
    workload = tmp_path / "replay.yaml"
    workload.write_text(f"""name: dbench
target: nfs3://127.0.0.1:{server.settings['nfs_port']}/memfs
dataset: {{root: dbench-replay, depth: 0, files_per_dir: 1, file_size: 1KiB}}
phases:
  - kind: prepare
  - {{kind: replay, trace: client.trace}}
""")
    out = tmp_path / "out"
    result = run(nas_bin, "run", workload, "--output", out, "--quiet")
    assert result.returncode == 0, result.stderr
    lines = read_results(out / "results.jsonl")
    replay = next(l for l in lines if l["type"] == "phase" and l["kind"] == "replay")
    assert replay["count"] == 10 and replay["errors"] == 0, lines


def test_bad_trace_line_is_named(nas_bin, tmp_path):
    (tmp_path / "t.trace").write_text("stat a\nfly a/b\n")
    (tmp_path / "w.yaml").write_text("target: nfs3://127.0.0.1:9/x\nphases:\n  - {kind: replay, trace: t.trace}\n")
    result = run(nas_bin, "run", tmp_path / "w.yaml", "--output", tmp_path / "out")
    assert result.returncode == 1
    assert "t.trace:2: unknown operation 'fly'" in result.stderr, result.stderr


def png_pixels(path: pathlib.Path):
    """(width, height, channels, rows) of an 8-bit non-interlaced PNG (what Chromium writes)."""
    import struct
    import zlib
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and interlace == 0 and color in (2, 6), header
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, channels, rows


def test_html_report_plots_render_in_headless_chromium(nas_bin, server, tmp_path):
    """The report's SVG plots drawn by a real browser: a screenshot of the report against one of
    the same report with the plot lines hidden must differ in many pixels, and those pixels must
    be the series' colours (not the page's black text or grey axes)."""
    workload = REPO / "Workloads" / "nfs-4k-random-read.yaml"
    for name, protocol in (("nfs3", "nfs3"), ("nfs4", "nfs4")):
        result = run(nas_bin, "run", workload, "--target", url(protocol, server.settings), "--duration", "1",
                     "--set", "phases.warmup.duration=200ms", "--interval", "0.2", "--output", tmp_path / name, "--quiet")
        assert result.returncode == 0, result.stderr
    html = tmp_path / "report.html"
    result = run(nas_bin, "report", tmp_path / "nfs3", tmp_path / "nfs4", "--format", "html", "--output", html)
    assert result.returncode == 0, result.stderr
    hidden = tmp_path / "hidden.html"
    hidden.write_text(html.read_text().replace("</head>", "<style>polyline { visibility: hidden; }</style></head>", 1))
    assert "polyline { visibility" in hidden.read_text()

    def screenshot(page: pathlib.Path) -> pathlib.Path:
        png = page.with_suffix(".png")
        shot = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--screenshot={png}",
                               "--window-size=1200,2400", page.as_uri()], capture_output=True, text=True, timeout=120)
        assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
        return png

    width, height, channels, drawn = png_pixels(screenshot(html))
    _, _, _, bare = png_pixels(screenshot(hidden))
    assert (width, height) == (1200, 2400)
    changed = coloured = 0
    for row_a, row_b in zip(drawn, bare):
        for x in range(0, width * channels, channels):
            if row_a[x:x + 3] != row_b[x:x + 3]:
                changed += 1
                r, g, b = row_a[x:x + 3]
                coloured += max(r, g, b) - min(r, g, b) > 40
    # Two runs: a percentile ladder per run and an ops/s line per run, 1.5 px wide strokes.
    assert changed > 2000, changed
    assert coloured > changed // 2, (coloured, changed)
