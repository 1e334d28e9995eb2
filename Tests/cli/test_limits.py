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
