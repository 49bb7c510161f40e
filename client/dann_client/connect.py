"""From ``--server`` and its options to a ``remote.ModelServer``: gRPC or REST.

``--server host:port`` is TensorFlow Serving's gRPC API, ``--server http://...`` or
``https://...`` its REST API (an ingress that passes only HTTP is common). Either way
the commands get the same three calls, so every command works over both; the heavy
modules of the protocol not chosen are never imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dann_client.contract import REST_SCHEMES
from dann_client.errors import UsageError

if TYPE_CHECKING:
    from dann_client.remote import ModelServer


def is_rest(server: str) -> bool:
    """Whether ``--server`` names the REST API (an http:// or https:// URL)."""
    return server.strip().lower().startswith(REST_SCHEMES)


def open_server(
    server: str,
    *,
    timeout: float,
    retries: int,
    tls: bool = False,
    ca_cert: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
) -> ModelServer:
    """The server at ``server`` over the protocol its form names. TLS is on with
    ``tls`` or any certificate file (gRPC), and for every https:// URL."""
    from dann_client.connection import TlsConfig

    secure = tls or any(path is not None for path in (ca_cert, client_cert, client_key))
    tls_config = TlsConfig(ca_cert, client_cert, client_key) if secure else None
    server = server.strip()
    if is_rest(server):
        from dann_client.rest import RestTransport
        from dann_client.rest_service import RestServer

        return RestServer(RestTransport(server, tls=tls_config, timeout=timeout, retries=retries))
    if "://" in server or not server:
        raise UsageError(
            f"--server {server!r}: give host:port for gRPC, or an http:// or https:// URL"
        )
    from dann_client.service import GrpcServer
    from dann_client.transport import Transport

    return GrpcServer(Transport(server, tls=tls_config, timeout=timeout, retries=retries))
