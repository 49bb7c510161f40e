"""Run ``dann-serve serve`` as a child process on free ports and wait until it serves.

The tests, the latency benchmark and the demo all need a real server process to talk
to over sockets; this is the one way they start, wait for and stop it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class LocalServer:
    """A ``dann-serve serve`` child process, its addresses and its log file."""

    def __init__(self, model_dir: Path, log_path: Path, *options: str) -> None:
        self.model_dir = Path(model_dir)
        self.log_path = Path(log_path)
        port, rest_port = free_port(), free_port()
        self.grpc_address = f"127.0.0.1:{port}"
        self.rest_url = f"http://127.0.0.1:{rest_port}"
        command = [
            *(sys.executable, "-m", "dann_serve", "serve", "--model-dir", str(model_dir)),
            *("--port", str(port), "--rest-port", str(rest_port), *options),
        ]
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, model: str = "dann", timeout: float = 120.0) -> LocalServer:
        """Block until ``model`` is AVAILABLE over REST; RuntimeError (with the log) if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"dann-serve serve exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                with urllib.request.urlopen(f"{self.rest_url}/v1/models/{model}", timeout=2) as r:
                    if b"AVAILABLE" in r.read():
                        return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"dann-serve serve not ready after {timeout:.0f} s:\n{self.log()}")

    def stop(self, signal_number: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``signal_number`` and return the exit code (killing it after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal_number)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
