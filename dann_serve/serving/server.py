"""Start both front ends over one registry, and stop them cleanly on SIGINT/SIGTERM.

The process's log lines, access log and metrics are set up here once
(:mod:`~dann_serve.serving.logs`, :mod:`~dann_serve.serving.monitoring`); each front end
makes each of its requests a counted, logged call itself.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from dann_client.contract import GRPC_PORT, REST_PORT
from dann_serve.drift.window import CAPACITY
from dann_serve.runtime import reuse_large_buffers
from dann_serve.serving import live_monitor
from dann_serve.serving.capture import CaptureOptions, start_capture
from dann_serve.serving.grpc_api import GrpcServer
from dann_serve.serving.limits import Limits
from dann_serve.serving.logs import configure_logging
from dann_serve.serving.memory import one_heap
from dann_serve.serving.registry import ModelRegistry
from dann_serve.serving.rest_api import rest_server as rest_server_for

log = logging.getLogger("dann_serve.serving")


@dataclass(frozen=True)
class ServeOptions:
    model_dir: Path
    host: str = "127.0.0.1"
    port: int = GRPC_PORT
    rest_port: int = REST_PORT  # 0: no REST, as TF Serving's --rest_api_port=0
    config_file: Path | None = None
    poll_seconds: float = 1.0
    limits: Limits = field(default_factory=Limits)
    workers: int = 8  # gRPC worker threads; REST has half as many (JSON is heavier)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    access_log: str | None = None  # a file to append to, "-" for stdout, None for none
    monitor_window: int | None = CAPACITY  # images per version's window; None: no monitor
    capture: CaptureOptions | None = None  # None: no served image is kept
    ui: bool = True  # the web page at / on the REST port


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _tls(options: ServeOptions) -> tuple[bytes, bytes] | None:
    """The certificate and key to listen with, or None for plaintext."""
    if not (options.tls_cert or options.tls_key):
        return None
    if not (options.tls_cert and options.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    return options.tls_cert.read_bytes(), options.tls_key.read_bytes()


def serve(options: ServeOptions) -> None:
    """Load the models, listen, and block until SIGINT or SIGTERM; then shut down.

    Raises ``ConfigError`` for an unreadable model config and ``OSError`` when a port
    cannot be bound or the capture folder cannot be made, before anything is listening.
    """
    configure_logging(options.access_log)
    capture = start_capture(options.capture) if options.capture else None
    one_heap()  # the command line has done it before TensorFlow loaded; no harm twice
    reuse_large_buffers()
    registry = ModelRegistry(options.model_dir, options.config_file)
    registry.poll()
    if not registry.model_names():
        log.warning("no model versions under %s yet; waiting for an export", options.model_dir)
    if options.monitor_window is not None:
        live_monitor.start(registry, options.monitor_window)

    tls = _tls(options)
    address = _address(options.host, options.port)
    grpc_server = GrpcServer(registry, address, options.limits, options.workers, tls)
    rest_server = None
    if options.rest_port:
        try:
            rest_server = rest_server_for(
                options.host,
                options.rest_port,
                registry,
                options.limits,
                max(2, options.workers // 2),
                options.ui,
            )
        except OSError as error:
            grpc_server.stop(grace=0)
            raise OSError(
                f"cannot listen for REST on {options.host}:{options.rest_port}: {error.strerror}"
            ) from None

    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    grpc_server.start()
    if rest_server is not None:
        rest_server.start()
    registry.start_polling(options.poll_seconds)
    scheme = "TLS" if tls else "plaintext"
    rest = f", REST on {options.host}:{options.rest_port}" if rest_server else ""
    log.info("gRPC (%s) on %s%s", scheme, _address(options.host, grpc_server.port), rest)

    while not stop.wait(0.5):  # a timed wait lets the signal handler run promptly
        pass
    log.info("shutting down")
    if rest_server is not None:
        rest_server.stop()
    grpc_server.stop(grace=5)
    live_monitor.stop()
    registry.stop()
    if capture is not None:
        capture.stop()  # what is queued is written, for a few seconds at most
    log.info("stopped")
