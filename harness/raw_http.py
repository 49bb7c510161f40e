"""HTTP/1.1 responses read off a raw socket, for the tests and the probe that send
hand-framed (and deliberately malformed) requests no HTTP client library would."""

from __future__ import annotations

import socket

Answer = tuple[int, bytes]  # (status, body)


def read_responses(
    sock: socket.socket, wait: float, status_line: bytes = b"HTTP/"
) -> tuple[list[Answer], str, bytes]:
    """Every response on ``sock`` until it closes or ``wait`` s pass in silence; how
    the reading ended ("closed", "timeout", "reset"); and any bytes after the last
    complete response (a caller checking framing expects none). A response counts
    only if its status line starts with ``status_line``."""
    sock.settimeout(wait)
    data, ended = b"", "closed"
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except TimeoutError:
            ended = "timeout"
            break
        except ConnectionResetError:
            ended = "reset"
            break
        if not chunk:
            break
        data += chunk
    answers = []
    while data.startswith(status_line):
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        answers.append((int(lines[0].split()[1]), rest[:length]))
        data = rest[length:]
    return answers, ended, data
