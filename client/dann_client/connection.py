"""What the gRPC and the REST transports share: TLS files, the retry backoff, and the
one-line form of whatever a server says.

Both transports promise the same policy (``--timeout`` per attempt, ``--retries``
with the same backoff when the server is unavailable, the same exit statuses), so the
pieces of that policy are written once, here, without importing grpc: a REST-only
run never loads it.
"""

from __future__ import annotations

import random
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dann_client.errors import UsageError

if TYPE_CHECKING:
    import grpc


@dataclass(frozen=True)
class TlsConfig:
    """Files for a TLS connection; with no CA file the system's roots are trusted."""

    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    def _check_pair(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise UsageError("--client-cert and --client-key go together")

    def credentials(self) -> grpc.ChannelCredentials:
        """The files as gRPC channel credentials."""
        import grpc

        self._check_pair()
        return grpc.ssl_channel_credentials(
            root_certificates=read_file(self.ca_cert, "--ca-cert"),
            private_key=read_file(self.client_key, "--client-key"),
            certificate_chain=read_file(self.client_cert, "--client-cert"),
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The files as an ``ssl`` context for HTTPS, verifying the server's name."""
        self._check_pair()
        try:
            context = ssl.create_default_context(cafile=self.ca_cert)
        except (OSError, ssl.SSLError) as error:
            raise UsageError(f"cannot use --ca-cert {self.ca_cert}: {_reason(error)}") from None
        if self.client_cert is not None:
            try:
                context.load_cert_chain(self.client_cert, self.client_key)
            except (OSError, ssl.SSLError) as error:
                raise UsageError(
                    f"cannot use --client-cert {self.client_cert} with --client-key "
                    f"{self.client_key}: {_reason(error)}"
                ) from None
        return context


def retry_delay(attempt: int, backoff: float, max_backoff: float) -> float:
    """Seconds to wait before retry ``attempt + 1``: ``backoff`` doubling up to
    ``max_backoff``, drawn from its upper half so that many clients turned away at
    once do not all come back in step."""
    ceiling = min(max_backoff, backoff * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)


def one_line(text: str, limit: int = 500) -> str:
    """A server's message as one line of at most ``limit`` characters: error texts
    span lines (TensorFlow's node and stack notes) and a proxy may send a whole page."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_file(path: Path | None, option: str) -> bytes | None:
    """The bytes of an option's file, or a usage error naming the option and file."""
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {option} {path}: {error.strerror}") from None


def server_port(server: str, url: str) -> int | None:
    """The port in ``url`` (a REST URL, or ``//host:port`` for gRPC), None if it names
    none; one parse for both transports, so that both refuse a port outside 1-65535
    (gRPC's own parse would take 99687 modulo 65536 and reach port 34151)."""
    try:
        port = urlsplit(url).port
    except ValueError:
        port = 0
    if port == 0:
        raise UsageError(f"--server {server!r} has an invalid port: give one from 1 to 65535")
    return port


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return one_line(str(error))
