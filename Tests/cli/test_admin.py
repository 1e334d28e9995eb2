"""The admin API (JSON), the Prometheus metrics and `dmanoel-nas console --connect`, against
the real binary, with S3 traffic from boto3 so the protocol counters have something to show."""

import json
import re
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import Server, wait_for
from s3_support import make_client, s3_config
from test_console import Tmux, thread_rows


@pytest.fixture
def server(nas_bin, tmp_path):
    config, _ = s3_config(tmp_path)
    data = json.loads(config.read_text())
    server = Server(nas_bin, config, tmp_path)
    server.admin = data["server"]["admin_port"]
    server.metrics = data["server"]["metrics_port"]
    server.s3 = data["server"]["s3_port"]
    server.bucket = next(iter(data["buckets"]))
    yield server
    server.stop()


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.status, response.read()


def post(port, path, body):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def s3_traffic(server, puts):
    client = make_client(f"http://127.0.0.1:{server.s3}")
    for i in range(puts):
        client.put_object(Bucket=server.bucket, Key=f"admin/{i}", Body=b"x" * 1000)
    client.get_object(Bucket=server.bucket, Key="admin/0")["Body"].read()


def test_status_json_has_loops_endpoints_and_protocol_counters(server):
    s3_traffic(server, 5)
    status, body = get(server.admin, "/api/v1/status")
    assert status == 200
    document = json.loads(body)
    assert len(document["loops"]) >= 1 and all(loop["mode"] in ("poll", "event") for loop in document["loops"])
    served = {e["service"]: e["served"] for e in document["endpoints"]}
    assert served["S3"] and served["the admin API"] and served["the metrics endpoint"]
    s3 = next(p for p in document["protocols"] if p["name"] == "S3")
    puts = next(op for op in s3["operations"] if op["name"] == "PutObject")
    assert puts["count"] == 5 and puts["bytes"] == 5000 and puts["errors"] == 0
    assert sum(count for _, count in puts["latency"]["buckets"]) == 5
    assert document["process"]["rss_bytes"] > 1 << 20


def test_tuning_is_applied_and_bad_requests_are_refused(server):
    status, answer = post(server.admin, "/api/v1/tuning", b'{"spin_ns": 12345}')
    assert status == 200 and answer["applied"].startswith("spin_ns 12345")
    document = json.loads(get(server.admin, "/api/v1/status")[1])
    assert all(loop["spin_ns"] == 12345 for loop in document["loops"])
    status, answer = post(server.admin, "/api/v1/tuning", b'{"poll_mode": "always", "loop": 0}')
    assert status == 200
    assert wait_for(lambda: json.loads(get(server.admin, "/api/v1/status")[1])["loops"][0]["poll_mode"] == "always")
    for body, fragment in ((b'{"spin_ns": -5}', "spin_ns"), (b'not json', "not JSON"), (b'{"poll_mode": "sometimes"}', "poll_mode"),
                           (b'{"colour": 3}', "exactly one"), (b'{"threads": 3}', "cannot change while the server runs"), (b'{"spin_ns": 1, "loop": 99}', "no loop 99")):
        status, answer = post(server.admin, "/api/v1/tuning", body)
        assert status == 400 and fragment in answer["error"], (body, answer)
    assert "tuning: spin_ns 12345" in server.log_text()
    with pytest.raises(urllib.error.HTTPError) as error:
        get(server.admin, "/api/v1/nothing")
    assert error.value.code == 404
    lines = json.loads(get(server.admin, "/api/v1/log?lines=5")[1])
    assert len(lines) <= 5 and any("tuning: poll_mode always" in line for line in lines)


def parse_metrics(text):
    """Every sample, keyed like `name{label="v",...}`, read with the Prometheus project's own
    text-format parser (PyPI prometheus-client): a line it cannot read fails the test."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sample.labels.items())
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


def test_prometheus_metrics_count_operations_with_consistent_histograms(server):
    s3_traffic(server, 7)
    status, body = get(server.metrics, "/metrics")
    assert status == 200
    samples = parse_metrics(body.decode())
    labels = 'protocol="S3",operation="PutObject"'
    assert samples[f"dmanoel_operations_total{{{labels}}}"] == 7
    assert samples[f"dmanoel_operation_bytes_total{{{labels}}}"] == 7000
    assert samples[f"dmanoel_operation_latency_seconds_count{{{labels}}}"] == 7
    buckets = [(k, v) for k, v in samples.items() if k.startswith("dmanoel_operation_latency_seconds_bucket{" + labels)]
    values = [v for _, v in buckets]
    assert values == sorted(values), "cumulative buckets must not decrease"
    assert samples[f'dmanoel_operation_latency_seconds_bucket{{{labels},le="+Inf"}}'] == 7
    assert samples['dmanoel_build_info{version="0.1.0",io="io_uring"}'] == 1 or any(k.startswith("dmanoel_build_info{") for k in samples)
    assert 0 < samples[f"dmanoel_operation_latency_seconds_sum{{{labels}}}"] < 7 * 10
    assert samples["process_resident_memory_bytes"] > 1 << 20
    assert any(k.startswith("dmanoel_loop_passes_total{") for k in samples)


def test_console_connect_plain_and_unreachable(server, nas_bin):
    process = subprocess.Popen([str(nas_bin), "console", "--connect", f"127.0.0.1:{server.admin}", "--plain", "--interval", "0.2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert re.match(r"t=\d+s conns=\d+ cpu=[\d.]+ rss=[\d.]+M loop0=(POLL|EVENT)/", line), line
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
    refused = subprocess.run([str(nas_bin), "console", "--connect", "127.0.0.1:1", "--plain"], capture_output=True, text=True, timeout=20)
    assert refused.returncode == 1 and "cannot connect to the admin API at 127.0.0.1:1" in refused.stderr
    bad = subprocess.run([str(nas_bin), "console", "--connect", "nohost:notaport"], capture_output=True, text=True, timeout=20)
    assert bad.returncode == 1 and "is not HOST:PORT" in bad.stderr


def test_full_screen_console_connect_shows_remote_protocols_and_tunes(server, nas_bin):
    s3_traffic(server, 3)
    term = Tmux(f"{nas_bin} console --connect 127.0.0.1:{server.admin} --interval 0.2")
    try:
        assert wait_for(lambda: "── Threads" in term.screen()), term.screen()
        assert wait_for(lambda: any(line.split()[:1] == ["S3"] for line in term.screen().splitlines())), term.screen()
        term.type("p")  # poll mode always, on the remote server
        assert wait_for(lambda: all(r[3] == "POLL" for r in thread_rows(term.screen())) and thread_rows(term.screen())), term.screen()
        assert wait_for(lambda: "tuning: poll_mode always" in server.log_text())
        # Confirmed through the admin API: every loop now has poll_mode always.
        loops = json.loads(get(server.admin, "/api/v1/status")[1])["loops"]
        assert loops and all(loop["poll_mode"] == "always" for loop in loops)
        term.type("q")
    finally:
        term.close()
