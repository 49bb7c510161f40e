"""Cases of ``bench/probe.py`` that run ``dann-client`` as a careless user would: a
server that answers one byte a second (18), deadlines no clock can hold (20), a port
past 65535 (21) and a directory it may not read (23). Each runs the command in a fresh
process, as typed, and reads its exit status and its stderr.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from bench._common import ROOT, client_command
from bench.probe_wire import Target, not_run, report

EXIT_UNREADABLE, EXIT_USAGE = 1, 2  # dann-client's documented exit statuses


def run_client(*arguments: str, timeout: float = 60) -> tuple[int | None, str, float]:
    """``dann-client ARGUMENTS``: its exit status (None if still running at
    ``timeout``, then killed), its stderr and its wall time."""
    start = time.monotonic()
    try:
        done = subprocess.run(
            [*client_command(), *arguments],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired as expired:
        stderr = expired.stderr.decode(errors="replace") if expired.stderr else ""
        return None, stderr, time.monotonic() - start
    return done.returncode, done.stderr, time.monotonic() - start


def _last_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1][:110] if lines else "(nothing on stderr)"


def _trickle_server(stop: threading.Event) -> tuple[socket.socket, threading.Thread]:
    """A server answering any request with a 200 whose bytes come one a second."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    body = b'{"model_version_status": [{"version": "1", "state": "AVAILABLE"}]}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    answer += b"Content-Length: %d\r\n\r\n%s" % (len(body), body)

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=trickle, args=(connection,), daemon=True).start()

    def trickle(connection: socket.socket) -> None:
        with connection:
            connection.recv(1 << 16)
            for index in range(len(answer)):
                if stop.wait(1.0):
                    return
                try:
                    connection.sendall(answer[index : index + 1])
                except OSError:
                    return

    thread = threading.Thread(target=serve)
    thread.start()
    return listener, thread


def case_read_deadline(target: Target) -> None:
    stop = threading.Event()
    listener, thread = _trickle_server(stop)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        code, stderr, took = run_client(
            "status", "--server", url, "--timeout", "3", "--retries", "0", timeout=45
        )
    finally:
        stop.set()
        thread.join()
        listener.close()
    report(
        "18",
        "dann-client status --timeout 3 --retries 0 against a server answering 1 byte/s",
        f"exit {code} after {took:.1f} s: {_last_line(stderr)}",
        "a nonzero exit soon after its 3 s deadline (under 8 s, start-up included)",
        code not in (None, 0) and took < 8,
        target,
    )


def case_impossible_timeouts(target: Target) -> None:
    for number, value in enumerate(("inf", "nan", "1e300")):
        code, stderr, _ = run_client("status", "--server", target.grpc, "--timeout", value)
        errors = [line for line in stderr.splitlines() if line.startswith("Error")]
        report(
            f"20{'abc'[number]}",
            f"dann-client status --timeout {value}",
            f"exit {code}: {_last_line(stderr)}",
            f"exit {EXIT_USAGE}, one error line naming --timeout, no traceback",
            code == EXIT_USAGE
            and len(errors) == 1
            and "--timeout" in errors[0]
            and "Traceback" not in stderr,
            target,
        )


def case_port_out_of_range(target: Target) -> None:
    for number, server in enumerate(("127.0.0.1:99687", "http://127.0.0.1:99687")):
        code, stderr, _ = run_client("status", "--server", server, "--retries", "0")
        report(
            f"21{'ab'[number]}",
            f"dann-client status --server {server}",
            f"exit {code}: {_last_line(stderr)}",
            f"exit {EXIT_USAGE} (a port is 1 to 65535), no traceback",
            code == EXIT_USAGE and "Traceback" not in stderr,
            target,
        )


def case_unreadable_directory(target: Target) -> None:
    sent = "dann-client predict DIR, DIR without read permission (mode 000)"
    if os.geteuid() == 0:
        not_run("23", sent, "run as root, who reads any directory whatever its mode")
        return
    with tempfile.TemporaryDirectory(prefix="probe-") as work:
        locked = Path(work) / "locked"
        locked.mkdir()
        locked.chmod(0)
        try:
            code, stderr, _ = run_client("predict", str(locked), "--server", target.grpc)
        finally:
            locked.chmod(0o755)
    report(
        "23",
        sent,
        f"exit {code}: {_last_line(stderr)}",
        f"exit {EXIT_UNREADABLE}, 'permission denied' named",
        code == EXIT_UNREADABLE and "permission denied" in stderr.lower(),
        target,
    )


CASES = {
    "18": case_read_deadline,
    "20": case_impossible_timeouts,
    "21": case_port_out_of_range,
    "23": case_unreadable_directory,
}
