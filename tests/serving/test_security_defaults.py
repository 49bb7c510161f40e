"""Security defaults of ``dann-serve serve`` and ``dann-client``.

- The server binds 127.0.0.1 unless ``--host`` says otherwise: its listening sockets
  are on the loopback address only, and a non-loopback address of this machine refuses.
- TLS end to end with a certificate made for the test: ``dann-client --tls --ca-cert``
  against ``dann-serve serve --tls-cert --tls-key`` (test_server.py checks the same
  server with the official stubs; client/tests checks the client against a toy server).
- No REST path reaches a file outside the model directory.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import signal
import socket
from pathlib import Path

import pytest


def _listening_addresses(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that process ``pid`` owns."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path(f"/proc/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            raw, port = local.split(":")
            packed = bytes.fromhex(raw)
            # /proc prints each 32-bit word of the address in host (little-endian) order.
            words = b"".join(packed[i : i + 4][::-1] for i in range(0, len(packed), 4))
            found.add((socket.inet_ntop(family, words), int(port, 16)))
    return found


def _other_local_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback, from the kernel's table."""
    path = Path("/proc/net/fib_trie")
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    addresses = {
        lines[i - 1].split()[-1]
        for i, line in enumerate(lines)
        if "/32 host LOCAL" in line and i > 0
    }
    return sorted(a for a in addresses if not a.startswith("127."))


def test_serve_binds_loopback_only_by_default(reliability_server):
    """``LocalServer`` passes no ``--host``: this is the default at work."""
    pid = reliability_server.process.pid
    grpc_port = int(reliability_server.grpc_address.rsplit(":", 1)[1])
    rest_port = int(reliability_server.rest_url.rsplit(":", 1)[1])
    listening = _listening_addresses(pid)
    assert {port for _, port in listening} >= {grpc_port, rest_port}, listening
    # gRPC listens on an IPv6 socket bound to the IPv4-mapped ::ffff:127.0.0.1.
    for address, _ in listening:
        ip = ipaddress.ip_address(address)
        assert (getattr(ip, "ipv4_mapped", None) or ip) == ipaddress.ip_address("127.0.0.1"), (
            listening
        )
    assert f"on 127.0.0.1:{grpc_port}, REST on 127.0.0.1:{rest_port}" in reliability_server.log()

    others = _other_local_addresses()
    if not others:
        pytest.skip("this machine has no address but loopback to try")
    for address in others:
        for port in (grpc_port, rest_port):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((address, port), timeout=5).close()


def test_serve_help_names_the_loopback_default():
    from click.testing import CliRunner

    from dann_serve.cli import serve

    host = next(option for option in serve.params if option.name == "host")
    assert host.default == "127.0.0.1"
    assert "0.0.0.0 exposes" in CliRunner().invoke(serve, ["--help"]).output


# -- TLS ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(exported_model: Path, start_server, tls_certificate):
    running = start_server(
        exported_model.parent.parent,
        "--tls-cert",
        str(tls_certificate["cert"]),
        "--tls-key",
        str(tls_certificate["key"]),
    )
    yield running
    assert running.stop(signal.SIGTERM) == 0, running.log()


@pytest.fixture(scope="module")
def digit_files(tiny_files: list[Path]) -> list[Path]:
    return tiny_files[:3]


@pytest.mark.slow
def test_tls_client_and_server_with_a_generated_certificate(
    dann_client, tls_server, tls_certificate, digit_files
):
    port = tls_server.grpc_address.rsplit(":", 1)[1]
    secure = f"localhost:{port}"  # the name the certificate is for
    trusted = dann_client(
        "predict", *digit_files, "--json", "--server", secure, "--ca-cert", tls_certificate["cert"]
    )
    assert trusted.returncode == 0, trusted.stderr
    assert [json.loads(line)["path"] for line in trusted.stdout.splitlines()] == [
        str(path) for path in digit_files
    ]
    status = dann_client(
        "status", "--tls", "--ca-cert", tls_certificate["cert"], "--server", secure
    )
    assert (status.returncode, status.stdout) == (0, "dann version 1: AVAILABLE\n")

    refusals = {
        "plaintext to a TLS port": ["--server", secure],
        "the system's roots do not know a self-signed certificate": ["--tls", "--server", secure],
        "the certificate is not for 127.0.0.1": [
            "--server",
            f"127.0.0.1:{port}",
            "--ca-cert",
            tls_certificate["cert"],
        ],
    }
    for case, options in refusals.items():
        result = dann_client(
            "predict", digit_files[0], "--retries", "0", "--timeout", "10", *options
        )
        assert result.returncode == 3, (case, result.stderr)
        assert result.stdout == "" and "Traceback" not in result.stderr, case
        assert len(result.stderr.splitlines()) == 1, (case, result.stderr)


# -- REST paths -----------------------------------------------------------------------

ESCAPES = [
    "/v1/models/..%2F..%2Fetc/metadata",
    "/v1/models/..%2f..%2f..%2fetc%2fpasswd",
    "/v1/models/%2e%2e/%2e%2e/etc/passwd",
    "/v1/models/dann/versions/../..",
    "/v1/models/dann/versions/1/../../../../etc/passwd",
    "/v1/models/dann/versions/..%2F..%2F..%2Fsecret.txt",
    "/v1/models/..%252F..%252Fsecret.txt/metadata",
    "/v1/models/dann%2F..%2F..%2Fsecret.txt",
    "/v1/models/..\\..\\secret.txt/metadata",
    "/v1/models/dann/labels/..%2F..%2Fsecret.txt",
    "/v1/../../etc/passwd",
    "//etc/passwd",
    "/etc/passwd",
    "/v1/models/dann/metadata/../../../../secret.txt",
    "/v1/models/%00/metadata",
]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_rest_paths_cannot_reach_outside_the_model_directory(reliability_server, method):
    secret = reliability_server.model_dir.parent / "secret.txt"
    token = "secret-token-5f3a"
    secret.write_text(token)
    host, port = reliability_server.rest_url.removeprefix("http://").rsplit(":", 1)
    for path in ESCAPES:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            # skip_host and a raw path: http.client sends the path byte for byte.
            connection.putrequest(method, path, skip_accept_encoding=True)
            body = b'{"instances": [[0]]}' if method == "POST" else b""
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            text = response.read().decode(errors="replace")
        finally:
            connection.close()
        assert response.status in (400, 404), (path, response.status, text)
        assert token not in text and "root:" not in text, (path, text)
        assert set(json.loads(text)) == {"error"}, (path, text)
