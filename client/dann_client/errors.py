"""The client's failures, each tied to the exit status the CLI reports for it.

Exit statuses (DESIGN.md): 0 every image answered; 1 some inputs unreadable;
2 usage error; 3 server unreachable or timed out; 4 server rejected the request.
Library callers catch these classes; the CLI turns them into one stderr line and
the status, never a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_REJECTED = 4


class ClientError(Exception):
    """Base class: ``str(error)`` is the one line shown to the user."""

    exit_code = EXIT_USAGE


class UsageError(ClientError):
    """Options or files that cannot work together (a bad ONNX file, a missing extra)."""

    exit_code = EXIT_USAGE


class ImageError(ClientError):
    """One input could not be read as an image; the others still go ahead."""

    exit_code = EXIT_UNREADABLE


class ServerUnavailable(ClientError):
    """Nobody answered at the address, or not within the deadline."""

    exit_code = EXIT_UNREACHABLE


class ServerRejected(ClientError):
    """The model server (or the local ONNX model) answered with an error.

    ``code`` is the gRPC status name (``NOT_FOUND``, ``INVALID_ARGUMENT``,
    ``FAILED_PRECONDITION``, ...), kept so callers can branch on it.
    """

    exit_code = EXIT_REJECTED

    def __init__(self, message: str, code: str = "UNKNOWN") -> None:
        super().__init__(message)
        self.code = code
