"""HTTP/1.1 to TensorFlow Serving's REST API: deadlines, retries, one-line errors.

The REST twin of ``transport.Transport``, with the same policy so that a user sees
no difference but the URL: ``timeout`` bounds each attempt, connecting and reading
the whole answer included; ``retries`` more attempts follow, with the same backoff,
when the server is unavailable (connection refused or reset, HTTP 502 or 503); failures become
``ServerUnavailable`` (exit 3) or ``ServerRejected`` (exit 4, with the server's
``{"error": ...}`` text). Built on the standard library's ``http.client``, so the
client gains no dependency: each thread keeps one keep-alive connection, which is
all a few batches in flight need.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from dann_client.connection import TlsConfig, one_line, retry_delay, server_port
from dann_client.contract import (
    CLIENT_MAX_REQUEST_BYTES,
    CLIENT_MAX_RESPONSE_BYTES,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
)
from dann_client.errors import ServerRejected, ServerUnavailable, UsageError

# TensorFlow Serving's HTTP statuses back to the gRPC codes they stand for
# (http_rest_api_util: ToHTTPStatusCode); 400 also stands for FAILED_PRECONDITION.
_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "RESOURCE_EXHAUSTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_RETRIED = frozenset({502, 503})  # what a server starting, restarting or behind a proxy says
# An idle keep-alive connection the server has closed fails on its next use like this;
# the request is then sent again at once on a new connection, which costs no retry.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class _Unavailable(Exception):
    """One attempt found nobody answering; retried, then reported with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RestTransport:
    """Requests to one base URL (``http://host:port`` or ``https://host/prefix``)."""

    def __init__(
        self,
        url: str,
        *,
        tls: TlsConfig | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        max_message_bytes: int = CLIENT_MAX_REQUEST_BYTES,
    ) -> None:
        try:
            parts = urlsplit(url)
        except ValueError as error:  # "Invalid IPv6 URL": a bracket left open
            raise UsageError(f"--server {url!r} is not a valid URL: {error}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--server {url!r} is not an http:// or https:// URL with a host")
        if parts.query or parts.fragment:
            raise UsageError(f"--server {url!r}: a server URL takes no ?query or #fragment")
        port = server_port(url, url)
        if parts.scheme == "http" and tls is not None:
            raise UsageError("--tls, --ca-cert, --client-cert and --client-key need https://")
        self.address = url.rstrip("/")
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_message_bytes = max_message_bytes
        self._host, self._port = parts.hostname, port
        self._context = (tls or TlsConfig()).ssl_context() if parts.scheme == "https" else None
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def request(self, method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
        """Send one request to ``prefix + path``; return the JSON object answered."""
        for attempt in range(self.retries + 1):
            try:
                status, reason, data = self._attempt(method, self.prefix + path, body)
                if status in _RETRIED:
                    raise _Unavailable(f"HTTP {status}: {_error_text(data) or reason}")
            except _Unavailable as failure:
                if attempt < self.retries:
                    time.sleep(retry_delay(attempt, self.backoff, self.max_backoff))
                    continue
                tries = f" after {self.retries + 1} attempts" if self.retries else ""
                raise ServerUnavailable(
                    f"cannot reach server {self.address}{tries}: {failure.reason}"
                ) from None
            return self._answer(status, reason, data)
        raise AssertionError("unreachable")  # the loop always returns or raises

    def close(self) -> None:
        with self._lock:
            for connection in self._opened:
                connection.close()
            self._opened.clear()

    def __enter__(self) -> RestTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _attempt(self, method: str, target: str, body: bytes | None) -> tuple[int, str, bytes]:
        """One attempt within ``timeout``: (status, reason, body), or ``_Unavailable``."""
        deadline = time.monotonic() + self.timeout
        connection = self._connection()
        reused = connection.sock is not None
        try:
            try:
                return self._exchange(connection, method, target, body, deadline)
            except _STALE:
                if not reused:
                    raise
                connection.close()  # the server closed it while idle: once more, anew
                return self._exchange(connection, method, target, body, deadline)
        except TimeoutError:
            connection.close()
            raise ServerUnavailable(
                f"server {self.address} did not answer within {self.timeout:g} s"
            ) from None
        except ssl.SSLError as error:
            connection.close()
            raise ServerUnavailable(
                f"cannot reach server {self.address}: TLS: {one_line(str(error))}"
            ) from None
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise _Unavailable(_reason(error)) from None
        finally:
            _forget_deadline(connection)

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        target: str,
        body: bytes | None,
        deadline: float,
    ) -> tuple[int, str, bytes]:
        headers = {"Accept": "application/json", "User-Agent": "dann-client"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        connection.timeout = _remaining(deadline)
        if connection.sock is None:
            connection.connect()
        connection.sock.settimeout(_remaining(deadline))
        watchdog = _Watchdog(connection.sock, _remaining(deadline))
        try:
            connection.request(method, target, body=body, headers=headers)
            with connection.getresponse() as response:
                data = response.read(CLIENT_MAX_RESPONSE_BYTES + 1)
        except (OSError, http.client.HTTPException):
            if watchdog.fired:
                raise TimeoutError from None
            raise
        finally:
            watchdog.cancel()
        if watchdog.fired:
            raise TimeoutError
        if len(data) > CLIENT_MAX_RESPONSE_BYTES:
            connection.close()
            raise ServerRejected(
                f"server {self.address} sent an answer over {CLIENT_MAX_RESPONSE_BYTES:,} bytes",
                "RESOURCE_EXHAUSTED",
            )
        return response.status, response.reason, data

    def _answer(self, status: int, reason: str, data: bytes) -> dict[str, Any]:
        if status == 200:
            try:
                payload = json.loads(data)
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                text = one_line(data.decode("utf-8", "replace"), 200)
                raise ServerRejected(
                    f"server {self.address} answered something that is not a JSON object: {text}",
                    "DATA_LOSS",
                )
            return payload
        text = _error_text(data) or reason
        if status == 504:
            raise ServerUnavailable(f"server {self.address} timed out: HTTP 504: {text}")
        code = _CODES.get(status, "UNKNOWN")
        raise ServerRejected(
            f"server {self.address} rejected the request: HTTP {status}: {text}", code
        )

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if self._context is not None:
                connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout, context=self._context
                )
            else:
                connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout
                )
            self._local.connection = connection
            with self._lock:
                self._opened.append(connection)
        return connection


class _Watchdog:
    """Shuts the socket down when the attempt's deadline passes. A socket timeout bounds
    each read only: a server sending its answer a byte a second would hold the client
    for ever, so sending, the head and the whole body are bounded together by this."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.fired = False
        self._sock = sock
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        with contextlib.suppress(OSError):  # already closed: the attempt is over anyway
            self._sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _forget_deadline(connection: http.client.HTTPConnection) -> None:
    """An idle kept-alive socket must not carry the last attempt's short timeout."""
    if connection.sock is not None:
        connection.sock.settimeout(None)


def _reason(error: Exception) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return f"unknown host ({error.strerror})"
    if isinstance(error, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(error, http.client.HTTPException):
        return f"no HTTP answer ({type(error).__name__}: {one_line(str(error), 100)})"
    return one_line(error.strerror or str(error)) if isinstance(error, OSError) else str(error)


def _error_text(data: bytes) -> str:
    """The server's ``{"error": ...}`` text, else the start of whatever it sent."""
    text = data.decode("utf-8", "replace")
    try:
        payload = json.loads(text)
    except ValueError:
        return one_line(text, 200)
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return one_line(payload["error"])
    return one_line(text, 200)
