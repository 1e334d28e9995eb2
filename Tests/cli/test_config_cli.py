"""`dmanoel-nas config check` and `config default`, run as a user would run them.

The binary comes from $DMANOEL_NAS_BIN (default: .build/release/dmanoel-nas under the
repository root). The reference configuration lives in ../shared/examples beside the
repository, as CI lays it out.
"""

import json
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
REFERENCE = (REPO / ".." / "shared" / "examples" / "reference-config.json").resolve()


def binary_path() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("DMANOEL_NAS_BIN", ".build/release/dmanoel-nas"))
    return path if path.is_absolute() else REPO / path


@pytest.fixture(scope="session")
def nas() -> pathlib.Path:
    path = binary_path()
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not an executable: build it (swift build -c release) or set DMANOEL_NAS_BIN")
    return path


def run(nas, *args):
    return subprocess.run([str(nas), *map(str, args)], capture_output=True, text=True, timeout=60)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o600)
    return path


MEMFS = '"mounts": {"memfs": {"module": "memfs", "path": "/"}}'


def test_reference_config_is_ok(nas):
    assert REFERENCE.is_file(), f"missing {REFERENCE}"
    result = run(nas, "config", "check", REFERENCE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{REFERENCE}: ok"
    # Whatever this machine lacks (the demofs plugin, /share, RDMA) is only a warning.
    for line in result.stderr.splitlines():
        assert line.startswith(f"{REFERENCE}: warning: "), line
    assert "error" not in result.stderr


def test_default_is_json_that_passes_check(nas, tmp_path):
    result = run(nas, "config", "default")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert set(config) >= {"server", "mounts", "shares", "buckets", "users"}
    # A first try must not expose data to the network.
    assert config["server"]["bind"] == "127.0.0.1"
    assert config["mounts"]["memfs"]["module"] == "memfs"
    path = write(tmp_path, "default.json", result.stdout)
    check = run(nas, "config", "check", path)
    assert check.returncode == 0, check.stderr
    assert check.stdout.splitlines() == [f"{path}: ok"]
    assert check.stderr == ""


def test_effective_configuration_round_trips(nas, tmp_path):
    path = write(tmp_path, "small.json", "{" + MEMFS + "}")
    result = run(nas, "config", "check", "--effective", path)
    assert result.returncode == 0, result.stderr
    first, _, rest = result.stdout.partition("\n")
    assert first == f"{path}: ok"
    effective = json.loads(rest)
    assert effective["server"]["nfs_port"] == 2049
    assert effective["exports"] == {
        "/memfs": {"path": "/memfs", "read_only": False, "squash": "none", "anon_uid": 65534, "anon_gid": 65534}
    }
    again = write(tmp_path, "again.json", rest)
    second = run(nas, "config", "check", "--effective", again)
    assert second.returncode == 0, second.stderr
    assert second.stdout.partition("\n")[2] == rest


BAD_FILES = {
    "wrong_type": ('{"server": {"threads": "abc"}}', "server.threads", "expected a whole number"),
    "unknown_key": ('{"server": {"thread": 4}}', "server.thread", 'Did you mean "threads"?'),
    "unknown_top_level_key": ('{"mount": {}}', "mount", 'Did you mean "mounts"?'),
    "unknown_module": ('{"mounts": {"linux": {"module": "zfs", "path": "/srv"}}}', "mounts.linux.module", 'unknown module "zfs"'),
    "port_clash": ('{"server": {"smb_port": 9000}}', "server.smb_port", "server.s3_port (by default)"),
    "duplicate_key": ('{"mounts": {"memfs": {"module": "memfs", "path": "/"}, "memfs": {"module": "memfs", "path": "/"}}}',
                      "mounts.memfs", 'duplicate key "memfs"'),
    "share_path_names_no_mount": ("{" + MEMFS + ', "shares": {"data": {"path": "/data"}}}', "shares.data.path", "/memfs"),
    "syntax_error": ('{\n    "server": {\n        "threads": 4\n        "rdma": true\n    }\n}', "server", "line 4, column 9"),
    "bad_bucket_name": ("{" + MEMFS + ', "buckets": {"My_Bucket": {"path": "/memfs"}}}', "buckets.My_Bucket", "lowercase"),
    "bad_cidr": ("{" + MEMFS + ', "exports": {"/memfs": {"clients": ["10.0.0.1/8"]}}}', 'exports["/memfs"].clients[0]', "10.0.0.0/8"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_refused_naming_the_key(nas, tmp_path, name):
    text, key_path, detail = BAD_FILES[name]
    path = write(tmp_path, f"{name}.json", text)
    result = run(nas, "config", "check", path)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: error: {key_path}: "), lines[0]
    assert detail in lines[0], lines[0]
    assert lines[0].endswith("."), lines[0]


def test_missing_file(nas, tmp_path):
    path = tmp_path / "absent.json"
    result = run(nas, "config", "check", path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"{path}: error: cannot open the file")


def test_several_files_fail_if_any_fails(nas, tmp_path):
    good = write(tmp_path, "good.json", "{" + MEMFS + "}")
    bad = write(tmp_path, "bad.json", '{"server": {"io": "uring"}}')
    result = run(nas, "config", "check", good, bad)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"{good}: ok"]
    assert result.stderr.startswith(f'{bad}: error: server.io: "uring" is not one of')


def test_world_readable_secrets_warn(nas, tmp_path):
    path = write(tmp_path, "open.json", run(nas, "config", "default").stdout)
    path.chmod(0o644)
    result = run(nas, "config", "check", path)
    assert result.returncode == 0
    assert f"{path}: warning: users: " in result.stderr


def test_help(nas):
    result = run(nas, "config", "--help")
    assert result.returncode == 0
    assert "check" in result.stdout and "default" in result.stdout
    check = run(nas, "config", "check", "--help")
    assert check.returncode == 0
    assert "Exit status" in check.stdout
    assert run(nas, "config", "check").returncode != 0
