"""S3 end to end: the real server binary driven by real clients (awscli, boto3, s3cmd, rclone) and by
raw sockets for malformed input, plus S3 <-> NFSv3 cross-protocol checks.

S3_TEST_TARGET=seaweed runs the same suite against SeaweedFS (a reference S3 server) instead of
dmanoel-nas; the tests marked as needing our binary (RSS, host directories, NFS) then report
themselves as skipped with that reason. Most tests share one server per module and keep to a key
prefix of their own (the `prefix` fixture)."""

import base64
import datetime
import hashlib
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from xml.etree import ElementTree

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import wait_for, rss_bytes
from s3_support import (BUCKET, SECRET_KEY, STREAMING, UNSIGNED, AwsCli, OursS3, Rclone, RawConnection,
                        S3cmd, SeaweedS3, aws_chunked, aws_chunked_length, key_path, make_client, raw_request, serves,
                        sign_request, target_kind)

TARGET = target_kind()
MiB = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def s3(request, tmp_path_factory):
    """The server under test, shared by the tests of this module."""
    tmp = tmp_path_factory.mktemp("s3")
    if TARGET == "seaweed":
        server = SeaweedS3(tmp)
    else:
        server = OursS3(request.getfixturevalue("nas_bin"), tmp)
    yield server
    alive = server.alive()
    code = server.stop()
    assert alive, f"the server died during the tests:\n{server.log_text()[-4000:]}"
    if TARGET == "ours":
        assert code == 0, f"the server exited {code} on SIGTERM"


@pytest.fixture(scope="module")
def client(s3):
    return make_client(s3.endpoint)


@pytest.fixture
def prefix(request):
    """A key prefix of this test's own, so tests sharing a server never see each other's keys."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", request.node.name)[:80] + "/"


@pytest.fixture
def ours_only():
    if TARGET != "ours":
        pytest.skip("needs our binary (host directory, RSS or NFS): S3_TEST_TARGET is " + TARGET)


def error_of(excinfo):
    """(HTTP status, S3 error code) of a botocore ClientError."""
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def multipart_etag(parts) -> str:
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def list_keys(client, bucket, prefix):
    keys, token = [], None
    while True:
        args = {"Bucket": bucket, "Prefix": prefix}
        if token:
            args["ContinuationToken"] = token
        page = client.list_objects_v2(**args)
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            return keys
        token = page["NextContinuationToken"]


def tree(root):
    """{relative path: bytes} of every file under root."""
    out = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


# ---------------------------------------------------------------------------------------------
# awscli


def test_awscli_cp_both_ways_ls_rm(s3, client, tmp_path, prefix):
    aws = AwsCli(s3.endpoint, tmp_path)
    source = tmp_path / "random.bin"
    data = os.urandom(6 * MiB + 12345)
    source.write_bytes(data)
    aws.run("s3", "cp", str(source), f"s3://{s3.bucket}/{prefix}random.bin")
    back = tmp_path / "back.bin"
    aws.run("s3", "cp", f"s3://{s3.bucket}/{prefix}random.bin", str(back))
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(data).digest()
    # Below the 8 MiB multipart threshold: one PutObject, so the ETag is the MD5.
    assert client.head_object(Bucket=s3.bucket, Key=prefix + "random.bin")["ETag"] == f'"{md5(data)}"'

    listing = aws.run("s3", "ls", f"s3://{s3.bucket}/{prefix}").stdout
    lines = [line.split() for line in listing.splitlines()]
    assert [(line[-2], line[-1]) for line in lines] == [(str(len(data)), "random.bin")], listing
    top = aws.run("s3", "ls", f"s3://{s3.bucket}/").stdout
    assert f"PRE {prefix}" in top, top

    aws.run("s3", "rm", f"s3://{s3.bucket}/{prefix}random.bin")
    assert aws.run("s3", "ls", f"s3://{s3.bucket}/{prefix}", check=False).stdout.strip() == ""
    with pytest.raises(ClientError) as excinfo:
        client.head_object(Bucket=s3.bucket, Key=prefix + "random.bin")
    assert error_of(excinfo)[0] == 404


def test_awscli_multipart_upload_and_ranged_download(s3, client, tmp_path, prefix):
    aws = AwsCli(s3.endpoint, tmp_path, settings={"multipart_threshold": "5MB", "multipart_chunksize": "5MB"})
    data = os.urandom(20 * MiB + 777)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    aws.run("s3", "cp", str(source), f"s3://{s3.bucket}/{prefix}big.bin")
    head = client.head_object(Bucket=s3.bucket, Key=prefix + "big.bin")
    parts = [data[i:i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    assert len(parts) == 5
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == multipart_etag(parts)
    # The download is five ranged GETs in parallel (bytes=0-5242879, ..., bytes=20971520-).
    back = tmp_path / "back.bin"
    aws.run("s3", "cp", f"s3://{s3.bucket}/{prefix}big.bin", str(back))
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(data).digest()
    uploads = client.list_multipart_uploads(Bucket=s3.bucket, Prefix=prefix).get("Uploads", [])
    assert uploads == []


def test_awscli_sync_up_down_and_delete(s3, client, tmp_path, prefix):
    aws = AwsCli(s3.endpoint, tmp_path)
    local = tmp_path / "local"
    (local / "sub" / "deeper").mkdir(parents=True)
    files = {"a.txt": b"alpha\n", "sub/b.bin": os.urandom(300000), "sub/deeper/c.json": b'{"c": 1}\n',
             "with space.txt": b"space\n"}
    for name, body in files.items():
        (local / name).write_bytes(body)
    remote = f"s3://{s3.bucket}/{prefix}tree"
    aws.run("s3", "sync", str(local), remote)
    assert sorted(list_keys(client, s3.bucket, prefix)) == sorted(f"{prefix}tree/{n}" for n in files)
    assert client.get_object(Bucket=s3.bucket, Key=f"{prefix}tree/sub/deeper/c.json")["Body"].read() == files["sub/deeper/c.json"]

    # A changed file (different size) is uploaded again; a removed one is deleted with --delete.
    files["a.txt"] = b"alpha, longer now\n"
    (local / "a.txt").write_bytes(files["a.txt"])
    (local / "with space.txt").unlink()
    del files["with space.txt"]
    aws.run("s3", "sync", "--delete", str(local), remote)
    assert sorted(list_keys(client, s3.bucket, prefix)) == sorted(f"{prefix}tree/{n}" for n in files)
    assert client.get_object(Bucket=s3.bucket, Key=f"{prefix}tree/a.txt")["Body"].read() == files["a.txt"]

    down = tmp_path / "down"
    aws.run("s3", "sync", remote, str(down))
    assert tree(down) == files


# ---------------------------------------------------------------------------------------------
# boto3: objects


def test_put_get_head_metadata_and_content_type(s3, client, prefix):
    body = os.urandom(4321)
    put = client.put_object(Bucket=s3.bucket, Key=prefix + "obj", Body=body, ContentType="application/x-test",
                            Metadata={"color": "blue", "Mixed-Case": "Value With Spaces"})
    assert put["ETag"] == f'"{md5(body)}"'
    head = client.head_object(Bucket=s3.bucket, Key=prefix + "obj")
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == f'"{md5(body)}"'
    assert head["ContentType"] == "application/x-test"
    assert head["Metadata"] == {"color": "blue", "mixed-case": "Value With Spaces"}
    age = datetime.datetime.now(datetime.timezone.utc) - head["LastModified"]
    assert datetime.timedelta(minutes=-2) < age < datetime.timedelta(minutes=2)
    got = client.get_object(Bucket=s3.bucket, Key=prefix + "obj")
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == head["Metadata"]
    assert got["ETag"] == head["ETag"]
    assert got["ResponseMetadata"]["HTTPHeaders"].get("accept-ranges") == "bytes"

    # Overwrite: new bytes, new ETag, metadata from the new PUT only; an empty object works too.
    client.put_object(Bucket=s3.bucket, Key=prefix + "obj", Body=b"second")
    head = client.head_object(Bucket=s3.bucket, Key=prefix + "obj")
    assert head["ContentLength"] == 6 and head["ETag"] == f'"{md5(b"second")}"' and head["Metadata"] == {}
    client.put_object(Bucket=s3.bucket, Key=prefix + "empty", Body=b"")
    empty = client.get_object(Bucket=s3.bucket, Key=prefix + "empty")
    assert empty["ContentLength"] == 0 and empty["Body"].read() == b"" and empty["ETag"] == f'"{md5(b"")}"'


def test_put_after_an_empty_put_on_the_same_connection(s3, prefix):
    """boto3 sends "Expect: 100-continue" even with an empty body; without a 100 Continue it
    misread the next response on the connection and waited for its read timeout."""
    client = make_client(s3.endpoint, read_timeout=10)
    client.put_object(Bucket=s3.bucket, Key=prefix + "empty", Body=b"")
    started = time.monotonic()
    for index in range(3):
        client.put_object(Bucket=s3.bucket, Key=prefix + f"after-{index}", Body=b"x" * 1000)
        client.put_object(Bucket=s3.bucket, Key=prefix + f"empty-{index}", Body=b"")
    assert time.monotonic() - started < 5


def test_range_reads(s3, client, prefix):
    body = bytes(range(256)) * 4  # 1024 bytes, every offset distinguishable mod 256
    client.put_object(Bucket=s3.bucket, Key=prefix + "r", Body=body)
    cases = {"bytes=10-19": (10, 19), "bytes=1000-": (1000, 1023), "bytes=-24": (1000, 1023),
             "bytes=0-0": (0, 0), "bytes=1020-5000": (1020, 1023), "bytes=0-": (0, 1023)}
    for header, (first, last) in cases.items():
        got = client.get_object(Bucket=s3.bucket, Key=prefix + "r", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, header
        assert got["ContentRange"] == f"bytes {first}-{last}/1024", header
        assert got["ContentLength"] == last - first + 1, header
        assert got["Body"].read() == body[first:last + 1], header
    for header in ("bytes=1024-", "bytes=5000-6000"):
        with pytest.raises(ClientError) as excinfo:
            client.get_object(Bucket=s3.bucket, Key=prefix + "r", Range=header)
        assert error_of(excinfo) == (416, "InvalidRange"), header
    # The 416 names the size; a HEAD with a range answers 206 with the range's length.
    response = raw_request(s3.port, "GET", key_path(s3.bucket, prefix + "r"), headers={"range": "bytes=2000-"})
    assert response.status == 416 and response.header("content-range") == "bytes */1024"
    head = client.head_object(Bucket=s3.bucket, Key=prefix + "r", Range="bytes=0-99")
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206 and head["ContentLength"] == 100


def test_conditional_requests(s3, client, prefix):
    key = prefix + "c"
    client.put_object(Bucket=s3.bucket, Key=key, Body=b"conditional")
    head = client.head_object(Bucket=s3.bucket, Key=key)
    etag, modified = head["ETag"], head["LastModified"]
    hour = datetime.timedelta(hours=1)

    def status(**conditions):
        try:
            return client.get_object(Bucket=s3.bucket, Key=key, **conditions)["ResponseMetadata"]["HTTPStatusCode"]
        except ClientError as error:
            return error.response["ResponseMetadata"]["HTTPStatusCode"]

    assert status(IfMatch=etag) == 200
    assert status(IfMatch='"0123456789abcdef0123456789abcdef"') == 412
    assert status(IfMatch="*") == 200
    assert status(IfNoneMatch=etag) == 304
    assert status(IfNoneMatch='"0123456789abcdef0123456789abcdef"') == 200
    assert status(IfModifiedSince=modified) == 304
    assert status(IfModifiedSince=modified - hour) == 200
    assert status(IfUnmodifiedSince=modified - hour) == 412
    assert status(IfUnmodifiedSince=modified + hour) == 200
    # S3's precedence (RFC 7232): If-Match true wins over If-Unmodified-Since false, and
    # If-None-Match false wins over If-Modified-Since true.
    assert status(IfMatch=etag, IfUnmodifiedSince=modified - hour) == 200
    assert status(IfNoneMatch=etag, IfModifiedSince=modified - hour) == 304
    # HEAD obeys the same conditions.
    with pytest.raises(ClientError) as excinfo:
        client.head_object(Bucket=s3.bucket, Key=key, IfMatch='"0123456789abcdef0123456789abcdef"')
    assert error_of(excinfo)[0] == 412
    with pytest.raises(ClientError) as excinfo:
        client.head_object(Bucket=s3.bucket, Key=key, IfNoneMatch=etag)
    assert error_of(excinfo)[0] == 304
    # A 412 on GET carries the S3 error code.
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket=s3.bucket, Key=key, IfMatch='"0123456789abcdef0123456789abcdef"')
    assert error_of(excinfo) == (412, "PreconditionFailed")


def test_presigned_get_and_put(s3, client, prefix):
    key = prefix + "presigned file.txt"
    put_url = client.generate_presigned_url("put_object", Params={"Bucket": s3.bucket, "Key": key}, ExpiresIn=600)
    body = os.urandom(100000)
    response = requests.put(put_url, data=body, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == f'"{md5(body)}"'
    get_url = client.generate_presigned_url("get_object", Params={"Bucket": s3.bucket, "Key": key}, ExpiresIn=600)
    response = requests.get(get_url, timeout=30)
    assert response.status_code == 200 and response.content == body
    # Through urllib too (no keep-alive, different header set).
    with urllib.request.urlopen(get_url, timeout=30) as answer:
        assert answer.read() == body

    # A tampered signature, a tampered key and an expired URL are refused.
    tampered = re.sub(r"X-Amz-Signature=([0-9a-f])", lambda m: "X-Amz-Signature=" + ("1" if m.group(1) == "0" else "0"), get_url)
    response = requests.get(tampered, timeout=30)
    assert response.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in response.text
    other = get_url.replace("presigned%20file.txt", "presigned%20filX.txt")
    assert other != get_url
    response = requests.get(other, timeout=30)
    assert response.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in response.text
    expired = client.generate_presigned_url("get_object", Params={"Bucket": s3.bucket, "Key": key}, ExpiresIn=1)
    time.sleep(2.1)
    response = requests.get(expired, timeout=30)
    assert response.status_code == 403 and "<Code>AccessDenied</Code>" in response.text, response.text
    # A presigned PUT cannot be replayed as a GET of the same key.
    response = requests.get(put_url, timeout=30)
    assert response.status_code == 403


def test_copy_object_metadata_copy_and_replace(s3, client, prefix):
    source = prefix + "source ü.txt"
    body = b"copy me " * 1000
    client.put_object(Bucket=s3.bucket, Key=source, Body=body, ContentType="text/x-source", Metadata={"origin": "src"})
    copied = client.copy_object(Bucket=s3.bucket, Key=prefix + "copy", CopySource={"Bucket": s3.bucket, "Key": source},
                                MetadataDirective="COPY")
    assert copied["CopyObjectResult"]["ETag"].strip('"') == md5(body)
    head = client.head_object(Bucket=s3.bucket, Key=prefix + "copy")
    assert head["Metadata"] == {"origin": "src"} and head["ContentType"] == "text/x-source"
    assert client.get_object(Bucket=s3.bucket, Key=prefix + "copy")["Body"].read() == body

    client.copy_object(Bucket=s3.bucket, Key=prefix + "replaced", CopySource={"Bucket": s3.bucket, "Key": source},
                       MetadataDirective="REPLACE", Metadata={"new": "yes"}, ContentType="text/x-new")
    head = client.head_object(Bucket=s3.bucket, Key=prefix + "replaced")
    assert head["Metadata"] == {"new": "yes"} and head["ContentType"] == "text/x-new"
    assert client.get_object(Bucket=s3.bucket, Key=prefix + "replaced")["Body"].read() == body
    # The source is untouched.
    head = client.head_object(Bucket=s3.bucket, Key=source)
    assert head["Metadata"] == {"origin": "src"} and head["ContentType"] == "text/x-source"

    # Copying an object onto itself is how S3 changes metadata: allowed with REPLACE only.
    client.copy_object(Bucket=s3.bucket, Key=source, CopySource={"Bucket": s3.bucket, "Key": source},
                       MetadataDirective="REPLACE", Metadata={"origin": "edited"}, ContentType="text/x-source")
    head = client.head_object(Bucket=s3.bucket, Key=source)
    assert head["Metadata"] == {"origin": "edited"}
    assert client.get_object(Bucket=s3.bucket, Key=source)["Body"].read() == body
    with pytest.raises(ClientError) as excinfo:
        client.copy_object(Bucket=s3.bucket, Key=source, CopySource={"Bucket": s3.bucket, "Key": source})
    assert error_of(excinfo) == (400, "InvalidRequest")
    # A missing source is NoSuchKey.
    with pytest.raises(ClientError) as excinfo:
        client.copy_object(Bucket=s3.bucket, Key=prefix + "x", CopySource={"Bucket": s3.bucket, "Key": prefix + "missing"})
    assert error_of(excinfo) == (404, "NoSuchKey")


def test_delete_objects_batch(s3, client, prefix):
    keys = [f"{prefix}d{i}" for i in range(6)] + [f"{prefix}sub/dir/e{i}" for i in range(3)]
    for key in keys:
        client.put_object(Bucket=s3.bucket, Key=key, Body=key.encode())
    missing = prefix + "never-existed"
    result = client.delete_objects(Bucket=s3.bucket, Delete={"Objects": [{"Key": k} for k in keys[:5] + [missing]]})
    assert sorted(d["Key"] for d in result.get("Deleted", [])) == sorted(keys[:5] + [missing])
    assert result.get("Errors", []) == []
    assert sorted(list_keys(client, s3.bucket, prefix)) == sorted(keys[5:])
    quiet = client.delete_objects(Bucket=s3.bucket, Delete={"Objects": [{"Key": k} for k in keys[5:]], "Quiet": True})
    assert quiet.get("Deleted", []) == [] and quiet.get("Errors", []) == []
    assert list_keys(client, s3.bucket, prefix) == []
    # Single deletes of a missing key succeed (204) too.
    assert client.delete_object(Bucket=s3.bucket, Key=missing)["ResponseMetadata"]["HTTPStatusCode"] == 204


# ---------------------------------------------------------------------------------------------
# boto3: listings


LISTING_KEYS = ["a-c", "a/b", "a/c/d", "a/c/e", "a0", "b", "c/y/z"] + [f"p/{i:03d}" for i in range(12)]


@pytest.fixture
def listing(s3, client, prefix):
    for key in LISTING_KEYS:
        client.put_object(Bucket=s3.bucket, Key=prefix + key, Body=key.encode())
    # Byte order, across directory boundaries: "a-c" < "a/b" < "a0" ('-' < '/' < '0').
    return [prefix + k for k in sorted(LISTING_KEYS, key=lambda k: k.encode())]


def test_list_objects_v2_pagination_in_byte_order(s3, client, prefix, listing):
    seen, token, pages = [], None, 0
    while True:
        args = {"Bucket": s3.bucket, "Prefix": prefix, "MaxKeys": 4}
        if token:
            args["ContinuationToken"] = token
        page = client.list_objects_v2(**args)
        pages += 1
        contents = page.get("Contents", [])
        assert page["KeyCount"] == len(contents) <= 4
        seen += [o["Key"] for o in contents]
        for entry in contents:
            body = entry["Key"][len(prefix):].encode()
            assert entry["Size"] == len(body) and entry["ETag"] == f'"{md5(body)}"'
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        token = page["NextContinuationToken"]
        assert pages < 20
    assert seen == listing
    assert pages == 5  # 19 keys, 4 a page
    full = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    assert [o["Key"] for o in full["Contents"]] == listing and not full["IsTruncated"]


def test_list_objects_v2_delimiter_and_start_after(s3, client, prefix, listing):
    page = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix, Delimiter="/")
    assert [o["Key"] for o in page.get("Contents", [])] == [prefix + k for k in ("a-c", "a0", "b")]
    assert [p["Prefix"] for p in page.get("CommonPrefixes", [])] == [prefix + p for p in ("a/", "c/", "p/")]
    assert page["KeyCount"] == 6
    nested = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix + "a/", Delimiter="/")
    assert [o["Key"] for o in nested.get("Contents", [])] == [prefix + "a/b"]
    assert [p["Prefix"] for p in nested.get("CommonPrefixes", [])] == [prefix + "a/c/"]
    # A prefix that is not a whole path component.
    partial = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix + "a", Delimiter="/")
    assert [o["Key"] for o in partial.get("Contents", [])] == [prefix + "a-c", prefix + "a0"]
    assert [p["Prefix"] for p in partial.get("CommonPrefixes", [])] == [prefix + "a/"]

    # Paging with a delimiter: common prefixes count against MaxKeys and are never repeated.
    entries, token = [], None
    while True:
        args = {"Bucket": s3.bucket, "Prefix": prefix, "Delimiter": "/", "MaxKeys": 2}
        if token:
            args["ContinuationToken"] = token
        page = client.list_objects_v2(**args)
        assert len(page.get("Contents", [])) + len(page.get("CommonPrefixes", [])) <= 2
        entries += [o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert sorted(entries) == sorted([prefix + k for k in ("a-c", "a0", "b", "a/", "c/", "p/")])
    assert len(entries) == 6

    after = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix, StartAfter=prefix + "a0")
    assert [o["Key"] for o in after["Contents"]] == listing[listing.index(prefix + "a0") + 1:]
    after_dir = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix, StartAfter=prefix + "a/c/d", MaxKeys=3)
    assert [o["Key"] for o in after_dir["Contents"]] == [prefix + "a/c/e", prefix + "a0", prefix + "b"]
    assert after_dir["IsTruncated"]
    nothing = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix + "zzz")
    assert nothing["KeyCount"] == 0 and "Contents" not in nothing


def test_list_objects_v1_marker(s3, client, prefix, listing):
    seen, marker, pages = [], "", 0
    while True:
        page = client.list_objects(Bucket=s3.bucket, Prefix=prefix, Marker=marker, MaxKeys=5)
        pages += 1
        keys = [o["Key"] for o in page.get("Contents", [])]
        seen += keys
        if not page["IsTruncated"]:
            break
        marker = page.get("NextMarker", keys[-1])
        assert pages < 20
    assert seen == listing and pages == 4
    page = client.list_objects(Bucket=s3.bucket, Prefix=prefix, Delimiter="/", MaxKeys=2)
    assert page["IsTruncated"]
    # With a delimiter, NextMarker is given and continues after the last key or prefix returned.
    returned = [o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    assert page["NextMarker"] == max(returned)
    rest = client.list_objects(Bucket=s3.bucket, Prefix=prefix, Delimiter="/", Marker=page["NextMarker"])
    more = [o["Key"] for o in rest.get("Contents", [])] + [p["Prefix"] for p in rest.get("CommonPrefixes", [])]
    assert sorted(returned + more) == sorted([prefix + k for k in ("a-c", "a0", "b", "a/", "c/", "p/")])


def test_keys_with_special_characters(s3, client, prefix):
    names = ["with space.txt", "plus+sign", "per%cent", "per%25cent-looking-encoded", "ünïcødé-日本語.txt",
             "deep/nested/dir/file", "tilde~eq=amp&semi;.txt", "quote'paren(1)!*.txt", "hash#question?",
             "emoji-\U0001F600", "trailing-space ", "caret^back`brace{}"]
    bodies = {prefix + n: f"body of {n}".encode() for n in names}
    for key, body in bodies.items():
        client.put_object(Bucket=s3.bucket, Key=key, Body=body)
    for key, body in bodies.items():
        assert client.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == body, key
        assert client.head_object(Bucket=s3.bucket, Key=key)["ContentLength"] == len(body), key
    # boto3 lists with encoding-type=url and decodes with unquote_plus: keys must come back exact.
    assert sorted(list_keys(client, s3.bucket, prefix)) == sorted(bodies)
    # Asked for explicitly, encoding-type=url comes back encoded (botocore leaves it alone then).
    encoded = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix, EncodingType="url")
    assert encoded.get("EncodingType") == "url"
    assert sorted(urllib.parse.unquote_plus(o["Key"]) for o in encoded["Contents"]) == sorted(bodies)
    assert all(" " not in o["Key"] for o in encoded["Contents"])
    assert [o["Key"] for o in encoded["Contents"] if o["Key"].startswith(urllib.parse.quote(prefix) + "plus")] == \
        [urllib.parse.quote(prefix) + "plus%2Bsign"]
    # Without encoding-type the keys are plain XML text.
    response = raw_request(s3.port, "GET", f"/{s3.bucket}", query=[("list-type", "2"), ("prefix", prefix)])
    assert response.status == 200, response
    namespace = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    xml_keys = [k.text for k in ElementTree.fromstring(response.body).findall("s3:Contents/s3:Key", namespace)]
    assert sorted(xml_keys) == sorted(bodies)
    for name in names:
        listed = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix + name)
        assert [o["Key"] for o in listed.get("Contents", [])][:1] == [prefix + name], name
    # Copy with an encoded copy source, then delete everything.
    client.copy_object(Bucket=s3.bucket, Key=prefix + "copy of ü+%", CopySource={"Bucket": s3.bucket, "Key": prefix + names[4]})
    assert client.get_object(Bucket=s3.bucket, Key=prefix + "copy of ü+%")["Body"].read() == bodies[prefix + names[4]]
    for key in list(bodies) + [prefix + "copy of ü+%"]:
        client.delete_object(Bucket=s3.bucket, Key=key)
    assert list_keys(client, s3.bucket, prefix) == []


# ---------------------------------------------------------------------------------------------
# boto3: buckets


def test_bucket_head_location_and_list(s3, client):
    assert client.head_bucket(Bucket=s3.bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    location = client.get_bucket_location(Bucket=s3.bucket)
    assert location["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert location.get("LocationConstraint") in (None, "", "us-east-1")
    names = [b["Name"] for b in client.list_buckets()["Buckets"]]
    assert s3.bucket in names
    with pytest.raises(ClientError) as excinfo:
        client.head_bucket(Bucket="no-such-bucket-here")
    assert error_of(excinfo)[0] == 404
    with pytest.raises(ClientError) as excinfo:
        client.get_bucket_location(Bucket="no-such-bucket-here")
    assert error_of(excinfo) == (404, "NoSuchBucket")


def test_create_and_delete_bucket(s3, client):
    name = "made-" + uuid.uuid4().hex[:12]
    client.create_bucket(Bucket=name)
    assert client.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert name in [b["Name"] for b in client.list_buckets()["Buckets"]]
    client.put_object(Bucket=name, Key="inside/file", Body=b"x")
    assert list_keys(client, name, "") == ["inside/file"]
    with pytest.raises(ClientError) as excinfo:
        client.delete_bucket(Bucket=name)
    assert error_of(excinfo) == (409, "BucketNotEmpty")
    assert client.get_object(Bucket=name, Key="inside/file")["Body"].read() == b"x"
    client.delete_object(Bucket=name, Key="inside/file")
    assert client.delete_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as excinfo:
        client.head_bucket(Bucket=name)
    assert error_of(excinfo)[0] == 404
    assert name not in [b["Name"] for b in client.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as excinfo:
        client.put_object(Bucket=name, Key="k", Body=b"x")
    assert error_of(excinfo) == (404, "NoSuchBucket")
    with pytest.raises(ClientError) as excinfo:
        client.delete_bucket(Bucket=name)
    assert error_of(excinfo) == (404, "NoSuchBucket")


def test_create_bucket_invalid_name(s3, client):
    for bad in ("Upper-Case", "ab", "under_score", "-leading-dash"):
        with pytest.raises(ClientError) as excinfo:
            client.create_bucket(Bucket=bad)
        assert error_of(excinfo) == (400, "InvalidBucketName"), bad


# ---------------------------------------------------------------------------------------------
# boto3: multipart


def test_multipart_create_upload_list_complete(s3, client, prefix):
    key = prefix + "assembled.bin"
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1 * MiB + 3)]
    upload = client.create_multipart_upload(Bucket=s3.bucket, Key=key, ContentType="application/x-parts",
                                            Metadata={"kind": "multipart"})
    upload_id = upload["UploadId"]
    etags = []
    # Uploaded out of order: part 3 first.
    for number in (3, 1, 2):
        result = client.upload_part(Bucket=s3.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=parts[number - 1])
        assert result["ETag"] == f'"{md5(parts[number - 1])}"'
        etags.append((number, result["ETag"]))
    listed = client.list_parts(Bucket=s3.bucket, Key=key, UploadId=upload_id)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed["Parts"]] == \
        [(n, f'"{md5(parts[n - 1])}"', len(parts[n - 1])) for n in (1, 2, 3)]
    uploads = client.list_multipart_uploads(Bucket=s3.bucket, Prefix=prefix).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(key, upload_id)]
    # In progress: not an object yet, and no part shows up in listings.
    assert list_keys(client, s3.bucket, prefix) == []
    with pytest.raises(ClientError) as excinfo:
        client.head_object(Bucket=s3.bucket, Key=key)
    assert error_of(excinfo)[0] == 404

    # Re-uploading a part replaces it.
    parts[1] = os.urandom(5 * MiB)
    client.upload_part(Bucket=s3.bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=parts[1])
    done = client.complete_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": f'"{md5(parts[n - 1])}"'} for n in (1, 2, 3)]})
    assert done["ETag"] == multipart_etag(parts)
    assert done["Key"] == key and done["Bucket"] == s3.bucket
    head = client.head_object(Bucket=s3.bucket, Key=key)
    assert head["ETag"] == multipart_etag(parts) and head["ContentLength"] == sum(map(len, parts))
    assert head["ContentType"] == "application/x-parts" and head["Metadata"] == {"kind": "multipart"}
    assert hashlib.sha256(client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()).digest() == \
        hashlib.sha256(b"".join(parts)).digest()
    ranged = client.get_object(Bucket=s3.bucket, Key=key, Range=f"bytes={5 * MiB - 10}-{5 * MiB + 9}")
    assert ranged["Body"].read() == b"".join(parts)[5 * MiB - 10:5 * MiB + 10]
    assert client.list_multipart_uploads(Bucket=s3.bucket, Prefix=prefix).get("Uploads", []) == []
    assert list_keys(client, s3.bucket, prefix) == [key]
    with pytest.raises(ClientError) as excinfo:
        client.list_parts(Bucket=s3.bucket, Key=key, UploadId=upload_id)
    assert error_of(excinfo) == (404, "NoSuchUpload")


def test_multipart_abort_leaves_nothing(s3, client, prefix):
    key = prefix + "aborted.bin"
    upload_id = client.create_multipart_upload(Bucket=s3.bucket, Key=key)["UploadId"]
    client.upload_part(Bucket=s3.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=os.urandom(5 * MiB))
    client.upload_part(Bucket=s3.bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=b"tail")
    assert client.abort_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=upload_id)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert client.list_multipart_uploads(Bucket=s3.bucket, Prefix=prefix).get("Uploads", []) == []
    assert list_keys(client, s3.bucket, prefix) == []
    with pytest.raises(ClientError) as excinfo:
        client.list_parts(Bucket=s3.bucket, Key=key, UploadId=upload_id)
    assert error_of(excinfo) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as excinfo:
        client.upload_part(Bucket=s3.bucket, Key=key, UploadId=upload_id, PartNumber=3, Body=b"late")
    assert error_of(excinfo) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as excinfo:
        client.complete_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]})
    assert error_of(excinfo) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as excinfo:
        client.head_object(Bucket=s3.bucket, Key=key)
    assert error_of(excinfo)[0] == 404


def test_multipart_complete_validation(s3, client, prefix):
    key = prefix + "validated.bin"
    upload_id = client.create_multipart_upload(Bucket=s3.bucket, Key=key)["UploadId"]
    first, second = os.urandom(5 * MiB), b"last part"
    e1 = client.upload_part(Bucket=s3.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=first)["ETag"]
    e2 = client.upload_part(Bucket=s3.bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=second)["ETag"]
    with pytest.raises(ClientError) as excinfo:
        client.complete_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=upload_id, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": '"0123456789abcdef0123456789abcdef"'}]})
    assert error_of(excinfo) == (400, "InvalidPart")
    with pytest.raises(ClientError) as excinfo:
        client.complete_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=upload_id, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 7, "ETag": e2}]})
    assert error_of(excinfo) == (400, "InvalidPart")
    with pytest.raises(ClientError) as excinfo:
        client.complete_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=upload_id, MultipartUpload={
            "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    assert error_of(excinfo) == (400, "InvalidPartOrder")
    # Still in progress after the refusals; a correct list completes it.
    done = client.complete_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert done["ETag"] == multipart_etag([first, second])
    assert client.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == first + second


def test_multipart_part_too_small(s3, client, prefix):
    key = prefix + "small-parts.bin"
    upload_id = client.create_multipart_upload(Bucket=s3.bucket, Key=key)["UploadId"]
    e1 = client.upload_part(Bucket=s3.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"a" * 1024)["ETag"]
    e2 = client.upload_part(Bucket=s3.bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=b"b" * 1024)["ETag"]
    with pytest.raises(ClientError) as excinfo:
        client.complete_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=upload_id, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert error_of(excinfo) == (400, "EntityTooSmall")
    client.abort_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=upload_id)


# ---------------------------------------------------------------------------------------------
# Authentication and errors


def test_wrong_secret_and_unknown_key_are_refused(s3, client, prefix):
    client.put_object(Bucket=s3.bucket, Key=prefix + "secret", Body=b"s")
    wrong = make_client(s3.endpoint, secret_key=SECRET_KEY + "x")
    with pytest.raises(ClientError) as excinfo:
        wrong.get_object(Bucket=s3.bucket, Key=prefix + "secret")
    assert error_of(excinfo) == (403, "SignatureDoesNotMatch")
    with pytest.raises(ClientError) as excinfo:
        wrong.put_object(Bucket=s3.bucket, Key=prefix + "written", Body=b"w")
    assert error_of(excinfo) == (403, "SignatureDoesNotMatch")
    unknown = make_client(s3.endpoint, access_key="NOSUCHACCESSKEY0000")
    with pytest.raises(ClientError) as excinfo:
        unknown.list_objects_v2(Bucket=s3.bucket)
    assert error_of(excinfo) == (403, "InvalidAccessKeyId")
    with pytest.raises(ClientError) as excinfo:
        unknown.list_buckets()
    assert error_of(excinfo) == (403, "InvalidAccessKeyId")
    # Nothing was written by the refused PUT.
    assert list_keys(client, s3.bucket, prefix) == [prefix + "secret"]
    # Anonymous requests are refused.
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{s3.endpoint}/{s3.bucket}/{prefix}secret", timeout=10)
    assert anonymous.value.code == 403 and b"<Code>AccessDenied</Code>" in anonymous.value.read()


def test_signature_details(s3, client, prefix):
    """Payload hash, Content-MD5 and clock checks."""
    path = key_path(s3.bucket, prefix + "body")
    # x-amz-content-sha256 that does not match the body.
    response = raw_request(s3.port, "PUT", path, body=b"actual body", payload_hash=hashlib.sha256(b"other").hexdigest())
    assert (response.status, response.error_code()) == (400, "XAmzContentSHA256Mismatch"), response
    # A wrong Content-MD5 is BadDigest.
    with pytest.raises(ClientError) as excinfo:
        client.put_object(Bucket=s3.bucket, Key=prefix + "body", Body=b"actual body",
                          ContentMD5=base64.b64encode(hashlib.md5(b"other").digest()).decode())
    assert error_of(excinfo) == (400, "BadDigest")
    assert list_keys(client, s3.bucket, prefix) == []
    # A correct one is accepted; UNSIGNED-PAYLOAD is accepted.
    client.put_object(Bucket=s3.bucket, Key=prefix + "body", Body=b"actual body",
                      ContentMD5=base64.b64encode(hashlib.md5(b"actual body").digest()).decode())
    response = raw_request(s3.port, "PUT", key_path(s3.bucket, prefix + "unsigned"), body=b"u" * 1000, payload_hash=UNSIGNED)
    assert response.status == 200 and response.header("etag") == f'"{md5(b"u" * 1000)}"'
    # A request signed 20 minutes ago is refused.
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
    response = raw_request(s3.port, "GET", path, now=old)
    assert (response.status, response.error_code()) == (403, "RequestTimeTooSkewed"), response


def test_streaming_signed_upload(s3, client, prefix):
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD: chunk signatures checked; a bad one stores nothing."""
    body = os.urandom(200 * 1024 + 17)
    path = key_path(s3.bucket, prefix + "streamed")
    headers = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": len(body),
               "content-length": aws_chunked_length(len(body))}
    signed = sign_request("PUT", path, s3.port, headers=headers, payload_hash=STREAMING)
    connection = RawConnection(s3.port)
    connection.send(signed.head + aws_chunked(signed, body))
    response = connection.read_response()
    connection.close()
    assert response.status == 200, response
    assert client.get_object(Bucket=s3.bucket, Key=prefix + "streamed")["Body"].read() == body
    assert client.head_object(Bucket=s3.bucket, Key=prefix + "streamed")["ETag"] == f'"{md5(body)}"'

    path = key_path(s3.bucket, prefix + "badchunk")
    signed = sign_request("PUT", path, s3.port, headers=headers, payload_hash=STREAMING)
    connection = RawConnection(s3.port)
    connection.send(signed.head + aws_chunked(signed, body, corrupt_chunk=2))
    try:
        response = connection.read_response()
        assert (response.status, response.error_code()) == (403, "SignatureDoesNotMatch"), response
    except ConnectionError:
        pass  # closed without an answer: also a refusal
    connection.close()
    assert list_keys(client, s3.bucket, prefix) == [prefix + "streamed"]


def test_not_found_errors_are_s3_errors(s3, client, prefix):
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket=s3.bucket, Key=prefix + "missing")
    assert error_of(excinfo) == (404, "NoSuchKey")
    assert excinfo.value.response["ResponseMetadata"].get("RequestId")
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket="no-such-bucket-here", Key="k")
    assert error_of(excinfo) == (404, "NoSuchBucket")
    with pytest.raises(ClientError) as excinfo:
        client.list_objects_v2(Bucket="no-such-bucket-here")
    assert error_of(excinfo) == (404, "NoSuchBucket")
    with pytest.raises(ClientError) as excinfo:
        client.head_object(Bucket=s3.bucket, Key=prefix + "missing")
    assert error_of(excinfo)[0] == 404
    # The raw error: XML with Code, Message and RequestId; HEAD errors have no body.
    response = raw_request(s3.port, "GET", key_path(s3.bucket, prefix + "missing"))
    assert response.status == 404 and response.error_code() == "NoSuchKey"
    assert b"<RequestId>" in response.body and b"<Message>" in response.body
    assert response.header("content-type") == "application/xml"
    assert response.header("x-amz-request-id")


# ---------------------------------------------------------------------------------------------
# s3cmd and rclone


def test_s3cmd_put_get_ls_del(s3, tmp_path, prefix):
    s3cmd = S3cmd(s3.port, tmp_path)
    small = tmp_path / "small.txt"
    small.write_text("hello from s3cmd\n")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * MiB + 5))
    base = f"s3://{s3.bucket}/{prefix}"
    s3cmd.run("put", str(small), base + "small.txt")
    s3cmd.run("put", "--multipart-chunk-size-mb=5", str(big), base + "big.bin")
    listing = s3cmd.run("ls", base).stdout
    found = {line.split()[-1]: int(line.split()[-2]) for line in listing.splitlines() if line.strip()}
    assert found == {base + "small.txt": small.stat().st_size, base + "big.bin": big.stat().st_size}, listing
    assert f"s3://{s3.bucket}" in s3cmd.run("ls").stdout
    s3cmd.run("get", "--force", base + "small.txt", str(tmp_path / "small.back"))
    s3cmd.run("get", "--force", base + "big.bin", str(tmp_path / "big.back"))
    assert (tmp_path / "small.back").read_bytes() == small.read_bytes()
    assert hashlib.sha256((tmp_path / "big.back").read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()
    s3cmd.run("del", base + "small.txt")
    s3cmd.run("del", base + "big.bin")
    assert s3cmd.run("ls", base).stdout.strip() == ""


def test_rclone_copy_directory_both_ways(s3, tmp_path, prefix):
    rclone = Rclone(s3.endpoint, tmp_path)
    local = tmp_path / "up"
    (local / "nested" / "deeper").mkdir(parents=True)
    files = {"one.txt": b"one\n", "nested/two.bin": os.urandom(200000), "nested/deeper/three.txt": b"three\n",
             "nested/big.bin": os.urandom(7 * MiB + 1), "space name.txt": b"spaces\n"}
    for name, body in files.items():
        (local / name).write_bytes(body)
    remote = f"nas:{s3.bucket}/{prefix.rstrip('/')}"
    rclone.run("copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", str(local), remote)
    listed = rclone.run("lsf", "-R", "--files-only", "--format", "sp", "--separator", "|", remote).stdout
    assert sorted(listed.split("\n")[:-1]) == sorted(f"{len(b)}|{n}" for n, b in files.items()), listed
    rclone.run("check", str(local), remote)
    down = tmp_path / "down"
    rclone.run("copy", remote, str(down))
    assert tree(down) == files
    rclone.run("delete", remote)
    assert rclone.run("lsf", "-R", remote).stdout.strip() == ""


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 behaviour and malformed input over raw sockets


def test_keep_alive_pipelining_and_expect_continue(s3, client, prefix):
    client.put_object(Bucket=s3.bucket, Key=prefix + "one", Body=b"first object")
    client.put_object(Bucket=s3.bucket, Key=prefix + "two", Body=b"second")
    connection = RawConnection(s3.port)
    try:
        # Three requests in one write: GET, HEAD, GET; answered in order on the same connection.
        connection.send(sign_request("GET", key_path(s3.bucket, prefix + "one"), s3.port).head +
                        sign_request("HEAD", key_path(s3.bucket, prefix + "one"), s3.port).head +
                        sign_request("GET", key_path(s3.bucket, prefix + "two"), s3.port).head)
        first = connection.read_response()
        head = connection.read_response(head_request=True)
        second = connection.read_response()
        assert (first.status, first.body) == (200, b"first object")
        assert head.status == 200 and head.header("content-length") == "12"
        assert (second.status, second.body) == (200, b"second")

        # Expect: 100-continue gets "100 Continue" before the body is sent (botocore waits up to
        # a second for it on every PUT).
        body = os.urandom(100000)
        signed = sign_request("PUT", key_path(s3.bucket, prefix + "expect"), s3.port,
                              headers={"expect": "100-continue", "content-length": len(body)},
                              payload_hash=hashlib.sha256(body).hexdigest())
        connection.send(signed.head)
        connection.sock.settimeout(3)
        interim = connection.read_head()
        assert interim.status == 100
        connection.sock.settimeout(20)
        connection.send(body)
        done = connection.read_response()
        assert done.status == 200 and done.header("etag") == f'"{md5(body)}"'
    finally:
        connection.close()
    assert client.get_object(Bucket=s3.bucket, Key=prefix + "expect")["Body"].read() == body

    # A refused Expect request gets its final answer at once, without the body being sent.
    connection = RawConnection(s3.port)
    try:
        signed = sign_request("PUT", key_path(s3.bucket, prefix + "refused"), s3.port, secret_key="wrong",
                              headers={"expect": "100-continue", "content-length": 1000000}, payload_hash=UNSIGNED)
        connection.send(signed.head)
        connection.sock.settimeout(5)
        answer = connection.read_head()
        if answer.status == 100:
            # Allowed by RFC 9110, though S3 answers at once: then the body must be sent.
            connection.send(b"z" * 1000000)
            answer = connection.read_response()
        assert (answer.status, answer.error_code()) == (403, "SignatureDoesNotMatch"), answer
    finally:
        connection.close()
    assert list_keys(client, s3.bucket, prefix) == [prefix + "expect", prefix + "one", prefix + "two"]


def test_bad_request_lines_get_400_and_server_survives(s3):
    for garbage in (b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET /x HTTP/1.1 extra\r\nHost: a\r\n\r\n",
                    b"\x00\x01\x02\x03 binary junk\r\n\r\n", b"GET / HTTP/1.1\r\nNo colon header\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: banana\r\n\r\n",
                    b"PUT /testbucket/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello"):
        connection = RawConnection(s3.port)
        try:
            connection.send(garbage)
            response = connection.read_response()
            assert response.status == 400, (garbage, response)
        finally:
            connection.close()
    assert serves(s3.port)


def test_huge_header_is_refused(s3):
    signed = sign_request("GET", "/", s3.port, headers={"x-padding": "p" * (70 * 1024)})
    connection = RawConnection(s3.port)
    try:
        connection.send(signed.head)
        try:
            response = connection.read_response()
            assert response.status in (431, 400), response
        except (ConnectionError, ConnectionResetError):
            raise AssertionError("closed without a 431 or 400")
    finally:
        connection.close()
    # Many medium headers adding up past the limit too.
    lines = "".join(f"x-h{i}: {'v' * 900}\r\n" for i in range(100))
    connection = RawConnection(s3.port)
    try:
        connection.send(f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n{lines}\r\n".encode())
        response = connection.read_response()
        assert response.status in (431, 400), response
    finally:
        connection.close()
    assert serves(s3.port)


def test_short_and_truncated_bodies_store_nothing(s3, client, prefix):
    def put_head(name, headers, payload_hash=UNSIGNED):
        # Transfer-Encoding is a hop-by-hop header: sent, never signed.
        unsigned = {k: v for k, v in headers.items() if k == "transfer-encoding"}
        signed = {k: v for k, v in headers.items() if k != "transfer-encoding"}
        head = sign_request("PUT", key_path(s3.bucket, prefix + name), s3.port, headers=signed, payload_hash=payload_hash).head
        return head[:-2] + "".join(f"{k}: {v}\r\n" for k, v in unsigned.items()).encode() + b"\r\n"

    # 1. Content-Length promises more than comes, then the client half-closes: refused or closed.
    connection = RawConnection(s3.port)
    connection.send(put_head("short", {"content-length": 100000}) + b"x" * 5000)
    # While that body is pending, other clients are served.
    assert serves(s3.port)
    connection.sock.shutdown(1)
    try:
        response = connection.read_response()
        assert response.status >= 400, response
    except ConnectionError:
        pass
    connection.close()

    # 2. A chunked body cut off in the middle of a chunk.
    connection = RawConnection(s3.port)
    connection.send(put_head("chunked-cut", {"transfer-encoding": "chunked"}) + b"1000\r\n" + b"y" * 100)
    connection.sock.shutdown(1)
    try:
        response = connection.read_response()
        assert response.status >= 400, response
    except ConnectionError:
        pass
    connection.close()

    # 3. A streaming-signed (aws-chunked) body cut off after its first chunk.
    body = os.urandom(300 * 1024)
    headers = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": len(body),
               "content-length": aws_chunked_length(len(body))}
    signed = sign_request("PUT", key_path(s3.bucket, prefix + "aws-chunked-cut"), s3.port, headers=headers, payload_hash=STREAMING)
    framed = aws_chunked(signed, body)
    connection = RawConnection(s3.port)
    connection.send(signed.head + framed[:len(framed) // 3])
    connection.sock.shutdown(1)
    try:
        response = connection.read_response()
        assert response.status >= 400, response
    except ConnectionError:
        pass
    connection.close()

    # 4. A client that connects, sends half a request head and vanishes.
    connection = RawConnection(s3.port)
    connection.send(b"PUT /" + s3.bucket.encode() + b"/" + prefix.encode() + b"half HTTP/1.1\r\nHost: 127.")
    connection.close()

    assert serves(s3.port)
    for name in ("short", "chunked-cut", "aws-chunked-cut", "half"):
        with pytest.raises(ClientError) as excinfo:
            client.head_object(Bucket=s3.bucket, Key=prefix + name)
        assert error_of(excinfo)[0] == 404, name
    assert list_keys(client, s3.bucket, prefix) == []

    # 5. A complete chunked body (no Content-Length) is stored whole, or refused with 411.
    connection = RawConnection(s3.port)
    payload = b"chunk one|" + b"chunk two"
    connection.send(put_head("chunked-ok", {"transfer-encoding": "chunked"}) + b"a\r\nchunk one|\r\n9\r\nchunk two\r\n0\r\n\r\n")
    response = connection.read_response()
    connection.close()
    assert response.status in (200, 411), response
    if response.status == 200:
        assert client.get_object(Bucket=s3.bucket, Key=prefix + "chunked-ok")["Body"].read() == payload
    else:
        assert response.error_code() == "MissingContentLength"

    # 6. Content-Length shorter than what is sent: the object has exactly Content-Length bytes and
    # the excess is read as the next request (a bad one).
    connection = RawConnection(s3.port)
    connection.send(put_head("exact", {"content-length": 5}) + b"helloGARBAGE-NOT-A-REQUEST\r\n\r\n")
    response = connection.read_response()
    assert response.status == 200, response
    try:
        junk = connection.read_response()
        assert junk.status == 400, junk
    except ConnectionError:
        pass
    connection.close()
    assert client.get_object(Bucket=s3.bucket, Key=prefix + "exact")["Body"].read() == b"hello"
    assert serves(s3.port)


# ---------------------------------------------------------------------------------------------
# Our binary only: host directories, RSS, NFS


@pytest.fixture
def host_dir_server(request, ours_only, tmp_path):
    """Our server with the bucket on an io_uring mount of tmp_path/outer/share; tmp_path also
    holds a secret file that must never be reachable."""
    nas_bin = request.getfixturevalue("nas_bin")  # after ours_only: no binary needed for seaweed
    share = tmp_path / "outer" / "share"
    share.mkdir(parents=True)
    share.chmod(0o777)
    (tmp_path / "secret.txt").write_bytes(b"TOP SECRET, outside the bucket")
    server = OursS3(nas_bin, tmp_path, mounts={"data": {"module": "io_uring", "path": str(share)}},
                    buckets={BUCKET: {"path": "/data"}})
    server.share = share
    server.tmp = tmp_path
    yield server
    alive = server.alive()
    assert server.stop() == 0
    assert alive


def test_path_traversal_never_leaves_the_bucket(host_dir_server):
    server = host_dir_server
    client = make_client(server.endpoint)
    client.put_object(Bucket=BUCKET, Key="inside/file", Body=b"inside")
    outside_before = {p for p in server.tmp.rglob("*") if server.share not in p.parents and p != server.share}
    attempts = ["/testbucket/../escape-dotdot", "/testbucket/%2e%2e/escape-pct", "/testbucket/%2E%2E/escape-PCT",
                "/testbucket/..%2fescape-slash", "/testbucket/inside/../../escape-nested",
                "/testbucket/inside/%2e%2e/%2e%2e/escape-nested-pct", "/testbucket//escape-abs",
                "/testbucket/%2fescape-abs-pct", "/testbucket/%2e%2e%2f%2e%2e%2fescape-deep",
                "/testbucket/./escape-dot", "/testbucket/inside/./../../../escape-mixed",
                "/testbucket/..", "/testbucket/%2e%2e", "/testbucket/inside/..%00/escape-nul"]
    statuses = {}
    for path in attempts:
        try:
            response = raw_request(server.port, "PUT", path, body=b"ESCAPED")
            statuses[path] = response.status
        except ConnectionError:
            statuses[path] = "closed"
    outside_after = {p for p in server.tmp.rglob("*") if server.share not in p.parents and p != server.share}
    assert outside_after == outside_before, (outside_after - outside_before, statuses)
    for root in ("/", os.getcwd(), str(server.tmp.parent)):
        assert not [n for n in os.listdir(root) if n.startswith("escape")], root
    # Whatever was accepted landed inside the share.
    for path in server.share.rglob("*"):
        if path.is_file() and path.read_bytes() == b"ESCAPED":
            assert server.share in path.parents

    # Reads of the secret file through traversal never return it.
    for path in ("/testbucket/../../secret.txt", "/testbucket/%2e%2e/%2e%2e/secret.txt",
                 "/testbucket/..%2f..%2fsecret.txt", "/testbucket/inside/%2e%2e/%2e%2e/%2e%2e/secret.txt"):
        try:
            response = raw_request(server.port, "GET", path)
        except ConnectionError:
            continue
        assert b"TOP SECRET" not in response.body, path
        assert response.status in (400, 403, 404), (path, response)
    for listing_prefix in ("../", "..", "/", "inside/../../"):
        page = client.list_objects_v2(Bucket=BUCKET, Prefix=listing_prefix)
        assert all(not o["Key"].endswith("secret.txt") for o in page.get("Contents", [])), listing_prefix
    assert serves(server.port)
    assert client.get_object(Bucket=BUCKET, Key="inside/file")["Body"].read() == b"inside"


def test_two_gib_put_and_get_stream_in_bounded_memory(host_dir_server):
    server = host_dir_server
    size = 2 * 1024 * MiB
    block = os.urandom(MiB)
    client = make_client(server.endpoint)
    client.put_object(Bucket=BUCKET, Key="warmup", Body=os.urandom(4 * MiB))
    client.get_object(Bucket=BUCKET, Key="warmup")["Body"].read()
    baseline = rss_bytes(server.pid)
    peak = [baseline]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], rss_bytes(server.pid))
            except (OSError, AssertionError):
                return
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        started = time.monotonic()
        signed = sign_request("PUT", key_path(BUCKET, "huge.bin"), server.port,
                              headers={"content-length": size}, payload_hash=UNSIGNED)
        connection = RawConnection(server.port, timeout=120)
        connection.send(signed.head)
        digest = hashlib.md5()
        for i in range(size // MiB):
            piece = i.to_bytes(8, "little") + block[8:]
            digest.update(piece)
            connection.sock.sendall(piece)
        response = connection.read_response()
        connection.close()
        put_seconds = time.monotonic() - started
        assert response.status == 200, response
        assert response.header("etag") == f'"{digest.hexdigest()}"'
        assert (server.share / "huge.bin").stat().st_size == size

        started = time.monotonic()
        connection = RawConnection(server.port, timeout=120)
        connection.send(sign_request("GET", key_path(BUCKET, "huge.bin"), server.port).head)
        back = hashlib.md5()
        received = [0]

        def sink(data):
            back.update(data)
            received[0] += len(data)
        response = connection.read_response(sink=sink)
        connection.close()
        get_seconds = time.monotonic() - started
        assert response.status == 200 and received[0] == size
        assert back.hexdigest() == digest.hexdigest()
    finally:
        stop.set()
        sampler.join()
    growth = peak[0] - baseline
    print(f"2 GiB PUT {put_seconds:.1f} s, GET {get_seconds:.1f} s; RSS {baseline >> 20} MiB -> peak {peak[0] >> 20} MiB")
    assert growth < 64 * MiB, f"RSS grew by {growth >> 20} MiB (from {baseline >> 20} to {peak[0] >> 20} MiB)"


def test_cross_protocol_s3_and_nfs3(ours_only, s3, client, prefix):
    from nfs_support import NFS, ROOT

    data = os.urandom(3 * MiB + 99)
    client.put_object(Bucket=s3.bucket, Key=prefix + "from-s3.bin", Body=data)
    nfs = NFS(s3.nfs_port, export="/memfs")
    try:
        directory = nfs.lookup(nfs.root, prefix.rstrip("/"))
        assert directory["status"] == 0, directory
        directory = directory["resok"]["object"]["data"]
        found = nfs.lookup(directory, "from-s3.bin")
        assert found["status"] == 0, found
        handle = found["resok"]["object"]["data"]
        out, offset = b"", 0
        while True:
            result = nfs.nfs.read(handle, offset, 1024 * 1024, auth=ROOT)
            assert result["status"] == 0, result
            out += result["resok"]["data"]
            offset += len(result["resok"]["data"])
            if result["resok"]["eof"]:
                break
        assert hashlib.sha256(out).digest() == hashlib.sha256(data).digest()

        # A file written over NFS is an object with the right size and ETag.
        written = os.urandom(1 * MiB + 4321)
        created = nfs.create(directory, "from-nfs.bin", how=0, mode=0o644)
        assert created["status"] == 0, created
        file_handle = nfs.handle(created)
        for offset in range(0, len(written), 60000):
            piece = written[offset:offset + 60000]
            assert nfs.nfs.write(file_handle, offset, len(piece), piece, 2, auth=ROOT)["status"] == 0
        listed = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix + "from-nfs")
        assert [(o["Key"], o["Size"], o["ETag"]) for o in listed["Contents"]] == \
            [(prefix + "from-nfs.bin", len(written), f'"{md5(written)}"')]
        assert client.get_object(Bucket=s3.bucket, Key=prefix + "from-nfs.bin")["Body"].read() == written

        # An aborted multipart upload leaves nothing visible over NFS either.
        def names_over_nfs():
            names, cookie, verifier = [], 0, b"\0" * 8
            while True:
                result = nfs.nfs.readdir(nfs.root, cookie=cookie, cookie_verf=verifier, count=8192, auth=ROOT)
                assert result["status"] == 0, result
                node = result["resok"]["reply"]["entries"]
                while node:
                    names.append(node[0]["name"].decode())
                    cookie = node[0]["cookie"]
                    node = node[0]["nextentry"]
                verifier = result["resok"]["cookieverf"]
                if result["resok"]["reply"]["eof"]:
                    return sorted(names)
        before = names_over_nfs()
        upload = client.create_multipart_upload(Bucket=s3.bucket, Key="aborted-over-nfs.bin")["UploadId"]
        client.upload_part(Bucket=s3.bucket, Key="aborted-over-nfs.bin", UploadId=upload, PartNumber=1, Body=os.urandom(MiB))
        client.abort_multipart_upload(Bucket=s3.bucket, Key="aborted-over-nfs.bin", UploadId=upload)
        assert names_over_nfs() == before
    finally:
        nfs.close()


def test_metadata_is_kept_on_a_host_directory(host_dir_server):
    """On linux/io_uring mounts the metadata lives in a user xattr of the file itself."""
    server = host_dir_server
    client = make_client(server.endpoint)
    body = os.urandom(70000)
    client.put_object(Bucket=BUCKET, Key="meta/doc.bin", Body=body, ContentType="application/x-test",
                      Metadata={"origin": "unit"}, CacheControl="max-age=60")
    head = client.head_object(Bucket=BUCKET, Key="meta/doc.bin")
    assert head["ContentType"] == "application/x-test" and head["Metadata"] == {"origin": "unit"}
    assert head["CacheControl"] == "max-age=60" and head["ETag"] == f'"{md5(body)}"'
    stored = os.getxattr(server.share / "meta" / "doc.bin", "user.s3.metadata").decode()
    assert stored.startswith("v1\n") and f"etag {md5(body)}" in stored and "type application/x-test" in stored
    # Changed behind S3's back: once the mount's attribute cache (TTL 1 s by default) has
    # expired, the ETag follows the new contents.
    (server.share / "meta" / "doc.bin").write_bytes(b"rewritten on the host")
    assert wait_for(lambda: client.head_object(Bucket=BUCKET, Key="meta/doc.bin")["ETag"] == f'"{md5(b"rewritten on the host")}"',
                    timeout=5, interval=0.2)


def test_conditional_put(s3, client, prefix):
    key = prefix + "cond"
    first = client.put_object(Bucket=s3.bucket, Key=key, Body=b"one")["ETag"]

    def put_with(headers, body):
        def add(**kwargs):
            kwargs["params"]["headers"].update(headers)
        client.meta.events.register_first("before-call.s3.PutObject", add)
        try:
            return client.put_object(Bucket=s3.bucket, Key=key, Body=body)
        finally:
            client.meta.events.unregister("before-call.s3.PutObject", add)

    for headers in ({"If-None-Match": "*"}, {"If-Match": '"0123456789abcdef0123456789abcdef"'}, {"If-None-Match": first}):
        with pytest.raises(ClientError) as excinfo:
            put_with(headers, b"refused")
        assert error_of(excinfo) == (412, "PreconditionFailed"), headers
    assert client.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == b"one"
    put_with({"If-Match": first}, b"two")
    assert client.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == b"two"
    key = prefix + "missing"
    with pytest.raises(ClientError) as excinfo:
        put_with({"If-Match": "*"}, b"x")
    assert error_of(excinfo) == (412, "PreconditionFailed")


def test_folder_objects_keep_their_content(s3, client, prefix):
    client.put_object(Bucket=s3.bucket, Key=prefix + "folder/", Body=b"folder body", ContentType="text/x-folder")
    client.put_object(Bucket=s3.bucket, Key=prefix + "folder/inside", Body=b"inside")
    got = client.get_object(Bucket=s3.bucket, Key=prefix + "folder/")
    assert got["Body"].read() == b"folder body" and got["ContentType"] == "text/x-folder"
    listed = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [(prefix + "folder/", 11), (prefix + "folder/inside", 6)]
    client.delete_object(Bucket=s3.bucket, Key=prefix + "folder/")
    listed = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix)["Contents"]
    assert [o["Key"] for o in listed] == [prefix + "folder/inside"]


def test_versions_listing_and_acls(s3, client, prefix):
    for name in ("a", "b/c"):
        client.put_object(Bucket=s3.bucket, Key=prefix + name, Body=name.encode())
    versions = client.list_object_versions(Bucket=s3.bucket, Prefix=prefix)
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in versions["Versions"]] == \
        [(prefix + "a", "null", True), (prefix + "b/c", "null", True)]
    acl = client.get_object_acl(Bucket=s3.bucket, Key=prefix + "a")
    assert acl["Grants"][0]["Permission"] == "FULL_CONTROL"
    client.put_object_acl(Bucket=s3.bucket, Key=prefix + "a", ACL="private")
    with pytest.raises(ClientError) as excinfo:
        client.put_object_acl(Bucket=s3.bucket, Key=prefix + "a", ACL="public-read")
    assert error_of(excinfo)[0] == 501
    with pytest.raises(ClientError) as excinfo:
        client.get_object_acl(Bucket=s3.bucket, Key=prefix + "nothing")
    assert error_of(excinfo) == (404, "NoSuchKey")


def test_browser_post_upload(s3, client, prefix):
    """A form upload with a signed policy (SigV4 via boto3's generate_presigned_post), then
    the same form with the policy's condition broken."""
    import requests

    post = client.generate_presigned_post(Bucket=s3.bucket, Key=prefix + "${filename}",
                                          Conditions=[["content-length-range", 1, 100], ["starts-with", "$key", prefix]],
                                          ExpiresIn=300)
    response = requests.post(post["url"], data=post["fields"], files={"file": ("form.txt", b"posted bytes")}, timeout=30)
    assert response.status_code == 204, response.text
    assert client.get_object(Bucket=s3.bucket, Key=prefix + "form.txt")["Body"].read() == b"posted bytes"
    too_big = requests.post(post["url"], data=post["fields"], files={"file": ("big.txt", b"x" * 101)}, timeout=30)
    assert too_big.status_code == 400 and "<Code>EntityTooLarge</Code>" in too_big.text
    fields = dict(post["fields"], key="elsewhere/form.txt")
    outside = requests.post(post["url"], data=fields, files={"file": ("form.txt", b"x")}, timeout=30)
    assert outside.status_code == 403 and "<Code>AccessDenied</Code>" in outside.text
    forged = dict(post["fields"], **{"x-amz-signature": "0" * 64})
    refused = requests.post(post["url"], data=forged, files={"file": ("form.txt", b"x")}, timeout=30)
    assert refused.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in refused.text
