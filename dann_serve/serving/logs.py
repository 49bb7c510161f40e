"""The server's log lines: one setup, every line with its time and level, and the
access log beside them.

A line without a time cannot be matched with a client's error or a metric's spike,
and one without a level cannot be filtered; both are on every line, times in UTC so
that lines from several machines sort together. The access log (one line per request,
written by :func:`dann_serve.serving.monitoring.finish`) goes to a place of its own,
never mixed into the server's own lines.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

ACCESS_LOGGER = "dann_serve.access"


class _UtcFormatter(logging.Formatter):
    """ISO 8601 times in UTC with milliseconds: one clock for every machine's lines."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def configure_logging(access_log: str | None = None, level: int = logging.INFO) -> None:
    """The server's one logging setup: every line on stderr with its time and level
    (TensorFlow's Python logger included); with ``access_log``, one line per request to
    that file (appended) or, for ``-``, to stdout. An access log that cannot be opened
    raises OSError before anything is changed."""
    target = _access_handler(access_log)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UtcFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    tensorflow = logging.getLogger("tensorflow")  # it installs a handler of its own
    tensorflow.handlers.clear()
    tensorflow.propagate = True

    access = logging.getLogger(ACCESS_LOGGER)
    for old in access.handlers:  # an access-log file of an earlier setup: not left open
        old.close()
    access.handlers.clear()
    access.propagate = False  # its lines go to their own place, never to stderr
    if target is None:
        access.setLevel(logging.CRITICAL + 1)  # off: finish() does not even format a line
        return
    target.setFormatter(_UtcFormatter("%(asctime)s %(message)s"))
    access.addHandler(target)
    access.setLevel(logging.INFO)


def _access_handler(access_log: str | None) -> logging.Handler | None:
    if access_log is None:
        return None
    if access_log == "-":
        return logging.StreamHandler(sys.stdout)
    try:
        return logging.FileHandler(access_log, encoding="utf-8")
    except OSError as error:
        raise OSError(f"cannot write the access log {access_log}: {error.strerror}") from None
