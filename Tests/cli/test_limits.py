"""Connection limits (server.max_connections, server.max_connections_per_client)."""

import socket

from conftest import Server, config_on_free_ports, wait_for


def test_connections_over_the_per_client_limit_are_closed(nas_bin, tmp_path):
    import json

    config = config_on_free_ports(tmp_path, max_connections_per_client=3)
    port = json.loads(config.read_text())["server"]["nfs_port"]
    server = Server(nas_bin, config, tmp_path)
    held = []
    try:
        for _ in range(3):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))

        def refused():
            extra = socket.create_connection(("127.0.0.1", port), timeout=5)
            extra.settimeout(5)
            try:
                return extra.recv(1) == b""  # closed by the server without a byte
            except ConnectionResetError:
                return True
            finally:
                extra.close()

        assert refused()
        assert wait_for(lambda: "refusing connections" in server.log_text())
        # The held connections still work (a NULL call on the RPC port gets its reply).
        null_call = bytes.fromhex("80000028" "00000001" "00000000" "00000002" "000186a3" "00000003" "00000000"
                                  "00000000" "00000000" "00000000" "00000000")
        held[0].sendall(null_call)
        assert len(held[0].recv(64)) >= 28
        # Closing one makes room for one.
        held.pop().close()

        def admitted():
            again = socket.create_connection(("127.0.0.1", port), timeout=5)
            again.sendall(null_call)
            again.settimeout(5)
            try:
                return len(again.recv(64)) >= 28
            except OSError:
                return False
            finally:
                again.close()

        assert wait_for(admitted, timeout=10)
    finally:
        for s in held:
            s.close()
        assert server.stop() == 0


def test_half_sent_requests_are_cut_after_the_request_timeout(nas_bin, tmp_path):
    """Slowloris: half an RPC record on the NFS port, half an HTTP head on the S3 port and half a
    NetBIOS frame on the SMB port are disconnected after server.request_timeout_s, while a
    complete request still works."""
    import json
    import time

    config = config_on_free_ports(tmp_path, request_timeout_s=1)
    settings = json.loads(config.read_text())["server"]
    server = Server(nas_bin, config, tmp_path)
    try:
        rpc = socket.create_connection(("127.0.0.1", settings["nfs_port"]), timeout=10)
        rpc.sendall(bytes.fromhex("80000028" "00000001"))  # a record mark for 40 bytes, then 4 of them
        http = socket.create_connection(("127.0.0.1", settings["s3_port"]), timeout=10)
        http.sendall(b"GET /bucket/key HTTP/1.1\r\nHost: x\r\n")  # no blank line, ever
        smb = socket.create_connection(("127.0.0.1", settings["smb_port"]), timeout=10)
        smb.sendall(bytes.fromhex("00000064") + b"\xfeSMB")  # a NetBIOS frame of 100 bytes, 4 of them
        started = time.monotonic()
        assert rpc.recv(1) == b""
        assert time.monotonic() - started < 8
        assert smb.recv(1) == b""
        assert time.monotonic() - started < 8
        answer = http.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408") or answer == b"", answer
        assert time.monotonic() - started < 8
        rpc.close()
        http.close()
    finally:
        assert server.stop() == 0
