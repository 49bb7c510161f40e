"""One gRPC channel to a model server: TLS, deadlines, retries, message limits.

A ``Transport`` knows nothing about models; it sends one request message to one
RPC path and returns the response, translating gRPC failures into the client's
errors: ``ServerUnavailable`` (exit 3) when nobody answers or the deadline
passes, ``ServerRejected`` (exit 4) when the server answers with an error.
UNAVAILABLE is retried with exponential backoff because it is what a server
that is still starting, restarting or shedding load says.
"""

from __future__ import annotations

import math
import time

import grpc
from google.protobuf.message import Message

from dann_client.connection import TlsConfig, one_line, retry_delay, server_port
from dann_client.contract import (
    CLIENT_MAX_REQUEST_BYTES,
    CLIENT_MAX_RESPONSE_BYTES,
    DEFAULT_RETRIES,
    DEFAULT_SERVER,
    DEFAULT_TIMEOUT,
)
from dann_client.errors import ServerRejected, ServerUnavailable

__all__ = ["TlsConfig", "Transport"]  # TlsConfig is shared with the REST transport

_MIN_CONNECT_MS = 20_000  # gRPC's own default for a connection attempt


class Transport:
    """A channel to ``address`` plus the policy for every call made over it.

    ``timeout`` is the deadline of each attempt in seconds, connecting to the
    server included; ``retries`` how many more attempts follow an UNAVAILABLE
    answer, waiting ``backoff`` seconds and doubling up to ``max_backoff`` (with
    jitter, so that many clients do not return in step). ``max_message_bytes``
    is the largest request it will send.
    """

    def __init__(
        self,
        address: str = DEFAULT_SERVER,
        *,
        tls: TlsConfig | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        max_message_bytes: int = CLIENT_MAX_REQUEST_BYTES,
    ) -> None:
        server_port(address, f"//{address}")
        self.address = address
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_message_bytes = max_message_bytes
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", CLIENT_MAX_RESPONSE_BYTES),
            # Our own retry loop below is the only one, so attempts are counted once.
            ("grpc.enable_retries", 0),
            # gRPC waits ~1 s before reconnecting after a refused connection and
            # fails calls at once meanwhile; align it with our backoff so that a
            # server that comes up between two attempts is found by the next one.
            ("grpc.initial_reconnect_backoff_ms", int(backoff * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(max_backoff * 1000)),
            # Despite its name, gRPC gives every connection attempt (TCP, TLS and
            # HTTP/2 handshake) at least this long. Never less than a call's own
            # deadline, so that `timeout` alone bounds connecting: set to the backoff,
            # it cut off any server more than ~0.1 s away whatever the timeout.
            ("grpc.min_reconnect_backoff_ms", max(_MIN_CONNECT_MS, math.ceil(timeout * 1000))),
        ]
        if tls is None:
            self._channel = grpc.insecure_channel(address, options=options)
        else:
            self._channel = grpc.secure_channel(address, tls.credentials(), options=options)
        self._stubs: dict[str, grpc.UnaryUnaryMultiCallable] = {}

    def call(self, path: str, request: Message, response_type: type[Message]) -> Message:
        """Send ``request`` to the RPC ``path``; return the parsed response."""
        stub = self._stubs.get(path)
        if stub is None:
            stub = self._channel.unary_unary(
                path,
                request_serializer=type(request).SerializeToString,
                response_deserializer=response_type.FromString,
            )
            self._stubs[path] = stub
        for attempt in range(self.retries + 1):
            try:
                return stub(request, timeout=self.timeout)
            except grpc.RpcError as error:
                code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
                if code == grpc.StatusCode.UNAVAILABLE and attempt < self.retries:
                    time.sleep(retry_delay(attempt, self.backoff, self.max_backoff))
                    continue
                raise self._translate(code, error) from None
        raise AssertionError("unreachable")  # the loop always returns or raises

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _translate(self, code: grpc.StatusCode, error: grpc.RpcError) -> Exception:
        details = (error.details() if isinstance(error, grpc.Call) else None) or str(code)
        details = one_line(details)
        if code == grpc.StatusCode.UNAVAILABLE:
            tries = f" after {self.retries + 1} attempts" if self.retries else ""
            return ServerUnavailable(f"cannot reach server {self.address}{tries}: {details}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return ServerUnavailable(
                f"server {self.address} did not answer within {self.timeout:g} s"
            )
        return ServerRejected(
            f"server {self.address} rejected the request: {code.name}: {details}", code.name
        )
