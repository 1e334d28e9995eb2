"""Virtual-hosted-style S3 addressing (server.s3_domain): the bucket comes from the Host header."""

import json

import pytest

from conftest import Server
from s3_support import make_client, raw_request, s3_config


@pytest.fixture
def hosted(nas_bin, tmp_path):
    config, settings = s3_config(tmp_path, s3_domain="s3.example.test")
    server = Server(nas_bin, config, tmp_path)
    server.port = settings["s3_port"]
    server.bucket = next(iter(json.loads(config.read_text())["buckets"]))
    yield server
    server.stop()


def test_virtual_hosted_requests_address_the_bucket_in_the_host(hosted):
    port, bucket = hosted.port, hosted.bucket
    host = {"host": f"{bucket}.s3.example.test:{port}"}
    put = raw_request(port, "PUT", "/dir/hosted.txt", headers=host, body=b"hosted bytes")
    assert put.status == 200, put
    # The same object through path style, and back through the virtual host.
    client = make_client(f"http://127.0.0.1:{port}")
    assert client.get_object(Bucket=bucket, Key="dir/hosted.txt")["Body"].read() == b"hosted bytes"
    got = raw_request(port, "GET", "/dir/hosted.txt", headers=host)
    assert got.status == 200 and got.body == b"hosted bytes"
    listing = raw_request(port, "GET", "/", query=[("list-type", "2")], headers=host)
    assert listing.status == 200 and b"<Key>dir/hosted.txt</Key>" in listing.body
    # A host under the domain that names no bucket is NoSuchBucket; another host is path style.
    missing = raw_request(port, "GET", "/x", headers={"host": f"nobucket.s3.example.test:{port}"})
    assert missing.status == 404 and b"<Code>NoSuchBucket</Code>" in missing.body


def test_s3_domain_must_be_a_dns_name(nas_bin, tmp_path):
    import subprocess
    config, _ = s3_config(tmp_path, s3_domain="http://bad domain")
    result = subprocess.run([str(nas_bin), "config", "check", str(config)], capture_output=True, text=True)
    assert result.returncode == 1 and "server.s3_domain" in result.stdout + result.stderr and "DNS name" in result.stdout + result.stderr
