"""An HTTP/1.1 server for the REST API: h11 frames the requests, asyncio runs the sockets.

What a front end on the open network must get right, done once here, below the routes:

- **Framing** is h11's (the HTTP/1.1 library of the Python ecosystem, used by uvicorn,
  httpx and others): Content-Length and chunked bodies, strictly parsed; a malformed
  head is a 400. Every request's body is read whole before its route runs, so a route
  that ignores its body cannot leave it on the connection to be read as the next
  request: one request, one response.
- **Bounds** (:class:`~dann_serve.serving.limits.Limits`): a body over the limit is
  refused with 429 from its declared length, unread, and the connection closed; a
  request takes one of ``max_in_flight`` slots once its body is in, so slow bodies
  hold none (:mod:`~dann_serve.serving.admission`); one deadline covers a request
  from its first byte to its answer (504 past it, or the connection closed if the
  request's head never arrived), so a client sending a byte every few seconds is
  dropped all the same.
- **Disconnects**: a client gone before its answer is a debug line, never a traceback.
- **Backlog**: the listening socket queues up to ``BACKLOG`` connections.
- **Observability**: every request, answered by the application or refused before it,
  is one :class:`~dann_serve.serving.monitoring.Call`, finished (counted, access-logged)
  once its answer is written. ``GET`` of the Prometheus path (``PROMETHEUS_PATH``) is
  answered here, beside the application, as TensorFlow Serving's HTTP server does.

The application is a plain function ``(method, target, body) -> (status, JSON bytes)``
run in a thread pool of ``workers`` threads; it must not raise. So is the web page
(``page``, :mod:`~dann_serve.serving.page`), asked first: its answer, or None for a path
that is not its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import h11

from dann_client.contract import PROMETHEUS_PATH
from dann_serve.serving import monitoring
from dann_serve.serving.admission import Admission, Refused
from dann_serve.serving.limits import Limits
from dann_serve.serving.memory import release_soon

log = logging.getLogger("dann_serve.serving")

App = Callable[[str, str, bytearray], tuple[int, bytes]]
Headers = tuple[tuple[bytes, bytes], ...]
BACKLOG = 1024  # the kernel caps it at net.core.somaxconn
MAX_HEAD_BYTES = 64 * 1024  # request line and headers
READ_SIZE = 256 * 1024
# How long a connection answered before its body was read discards the rest.
LINGER_SECONDS = 2.0
SERVER_NAME = b"dann-serve"
JSON_TYPE = b"application/json"
# What the application and the pages answer: status, body, content type, headers of its own.
Answer = tuple[int, bytes, bytes, Headers]
Page = Callable[[str, str, bytearray], Answer | None]
_PHRASES = {int(status): status.phrase.encode() for status in HTTPStatus}


def json_bytes(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening; OSError when that is impossible."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class HttpServer:
    """Serve ``app`` on ``host:port`` from a thread of its own (:meth:`start`)."""

    def __init__(
        self, host: str, port: int, app: App, limits: Limits, workers: int, page: Page | None = None
    ) -> None:
        self.app = app
        self.page = page
        self.limits = limits
        self._socket = _listening_socket(host, port)
        self.port = self._socket.getsockname()[1]
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rest")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="rest", daemon=True)
        self._stopped: asyncio.Event | None = None
        # asyncio's primitives bind to the loop that first waits on them: made here, used there.
        self._admission = Admission(limits)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let the requests in flight finish (up to ``timeout``), close."""
        if self._thread.is_alive() and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._socket.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(
            self._connection, sock=self._socket, limit=READ_SIZE, backlog=BACKLOG
        )
        async with server:
            await self._stopped.wait()
            server.close()
            # Let the requests in flight finish, then end the idle connections.
            deadline = asyncio.get_running_loop().time() + 5
            while self._admission.busy and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

    # -- one connection ----------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        sock = writer.get_extra_info("socket")
        if sock is not None:  # headers and body leave in one write; no Nagle delay either
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        try:
            while await self._exchange(connection, reader, writer):
                connection.start_next_cycle()
            if connection.their_state is h11.SEND_BODY:
                await _linger(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError) as error:
            log.debug("rest: connection ended: %s", error)
        except Exception:
            log.exception("rest: internal error on a connection")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _head(self, connection: h11.Connection, reader: asyncio.StreamReader):
        """The next request head, refused 431 when over MAX_HEAD_BYTES.

        h11's own limit only sees a head still incomplete: one that arrives whole in a
        read (up to READ_SIZE) passes it, whatever its size, so the head's bytes (those
        received minus those left unparsed) are counted here.
        """
        received = len(connection.trailing_data[0])
        while (event := connection.next_event()) is h11.NEED_DATA:
            data = await reader.read(READ_SIZE)
            received += len(data)
            connection.receive_data(data)
        size = received - len(connection.trailing_data[0])
        if isinstance(event, h11.Request) and size > MAX_HEAD_BYTES:
            raise h11.RemoteProtocolError(
                f"request head of {size} bytes is over the limit of {MAX_HEAD_BYTES}",
                error_status_hint=431,
            )
        return event

    async def _exchange(self, connection, reader, writer) -> bool:
        """Read one request, answer it; whether the connection may carry another."""
        if connection.trailing_data[0] == b"" and not connection.trailing_data[1]:
            # Idle between requests: wait for a first byte no longer than a request may take.
            try:
                async with asyncio.timeout(self.limits.rest_timeout):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                return False
            connection.receive_data(data)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.rest_timeout
        try:
            async with asyncio.timeout_at(deadline):
                request = await self._head(connection, reader)
        except TimeoutError:
            log.debug("rest: request head not complete in %g s", self.limits.rest_timeout)
            return False
        except h11.RemoteProtocolError as error:
            status = error.error_status_hint
            await self._send_raw(writer, status, f"bad request: {error}")
            call = monitoring.Call(monitoring.REST, _peer(writer), "- -", http_status=status)
            monitoring.finish(call)
            return False
        if not isinstance(request, h11.Request):
            return False  # the client closed the connection
        target = f"{request.method.decode('latin-1')} {request.target.decode('latin-1')}"
        call = monitoring.Call(monitoring.REST, _peer(writer), target)
        answer, keep_alive = await self._answer_by(
            deadline, connection, request, reader, writer, call
        )
        try:
            return await self._respond(connection, writer, request, answer, keep_alive)
        finally:
            call.http_status, call.bytes_out = answer[0], len(answer[1])
            monitoring.finish(call)

    async def _answer_by(
        self,
        deadline: float,
        connection,
        request: h11.Request,
        reader,
        writer,
        call: monitoring.Call,
    ) -> tuple[Answer, bool]:
        """The answer to ``request`` (or its refusal, or 504 past ``deadline``), and
        whether the connection may carry another request after it."""
        try:
            async with asyncio.timeout_at(deadline):
                return await self._answer(connection, request, reader, writer, call), True
        except TimeoutError:
            call.status = "DEADLINE_EXCEEDED"
            return (504, json_bytes(self._deadline_error()), JSON_TYPE, ()), False
        except Refused as refused:
            return (refused.status, json_bytes({"error": refused.message}), JSON_TYPE, ()), False

    def _deadline_error(self) -> dict:
        # TF Serving's words for its own REST timeout.
        return {
            "error": f"Deadline exceeded: the request took more than {self.limits.rest_timeout:g} s"
        }

    async def _answer(
        self, connection, request: h11.Request, reader, writer, call: monitoring.Call
    ) -> Answer:
        """Read the request's body, then take a slot and run the app on it in a worker
        thread; the body's bytes and the slot are given back when the worker is done."""
        length = _content_length(request)
        call.bytes_in = length or 0
        if length is not None and any(name == b"transfer-encoding" for name, _ in request.headers):
            # Two framings a proxy in front might choose between: the way to smuggle.
            raise Refused(400, "Content-Length and Transfer-Encoding in one request")
        if length is not None and length > self.limits.max_message_bytes:
            raise Refused(429, _over_limit(length, self.limits.max_message_bytes))
        admission = self._admission
        admission.start_receiving()
        try:
            if connection.they_are_waiting_for_100_continue:
                go_on = h11.InformationalResponse(status_code=100, headers=[])
                await self._write(writer, connection.send(go_on))
            body, taken = await self._body(connection, reader)
        finally:
            admission.stop_receiving()
        call.bytes_in = len(body)
        try:
            await admission.take_slot()
        except BaseException:
            admission.bodies.give_back(taken)
            raise
        method, target = request.method.decode("latin-1"), request.target.decode("latin-1")
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, self._work, call, method, target, body
        )

        def done(_) -> None:
            admission.give_slot_back()
            admission.bodies.give_back(taken)

        # The deadline ends the wait, not the work: the slot stays taken until the
        # worker is done, so no more than max_in_flight requests ever run.
        future.add_done_callback(done)
        return await asyncio.shield(future)

    def _work(self, call: monitoring.Call, method: str, target: str, body: bytearray) -> Answer:
        """In a worker thread: the metrics page, the web page, or the application with
        ``call`` as the request the core's notes go to."""
        if method in ("GET", "HEAD") and target.split("?", 1)[0] == PROMETHEUS_PATH:
            page, content_type = monitoring.page()
            return 200, page, content_type.encode(), ()
        if self.page is not None and (answer := self.page(method, target, body)) is not None:
            return answer
        try:
            with monitoring.current(call):
                status, payload = self.app(method, target, body)
        finally:
            release_soon()  # the trimmer decides, once requests pause, whether to trim
        return status, payload, JSON_TYPE, ()

    async def _body(self, connection: h11.Connection, reader) -> tuple[bytearray, int]:
        """The request's whole body (a bytearray: json.loads reads it as it is, no copy),
        and the bytes its reading took from the bodies' budget; given back here if the
        body never completes."""
        body, taken = bytearray(), 0
        try:
            while True:
                try:
                    event = connection.next_event()
                except h11.RemoteProtocolError as error:
                    raise Refused(400, f"bad request body: {error}") from None
                if event is h11.NEED_DATA:
                    data = await reader.read(READ_SIZE)
                    await self._admission.bodies.take(len(data))
                    taken += len(data)
                    connection.receive_data(data)
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > self.limits.max_message_bytes:  # chunked: no length ahead
                        raise Refused(429, _over_limit(len(body), self.limits.max_message_bytes))
                elif isinstance(event, h11.EndOfMessage):
                    return body, taken
                else:
                    raise Refused(400, "the connection closed inside the request body")
        except BaseException:
            self._admission.bodies.give_back(taken)
            raise

    async def _respond(self, connection, writer, request, answer: Answer, keep_alive: bool) -> bool:
        status, body, content_type, own_headers = answer
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"server", SERVER_NAME),
            *own_headers,
        ]
        if not keep_alive:
            headers.append((b"connection", b"close"))
        try:
            response = h11.Response(status_code=status, headers=headers, reason=_reason(status))
            data = connection.send(response)
            if request.method != b"HEAD":
                data += connection.send(h11.Data(data=body))
            data += connection.send(h11.EndOfMessage())
        except h11.LocalProtocolError as error:
            log.debug("rest: cannot answer: %s", error)
            return False
        await self._write(writer, data)
        return connection.our_state is h11.DONE and connection.their_state is h11.DONE

    async def _write(self, writer, data: bytes) -> None:
        if writer is None or writer.is_closing():
            return
        writer.write(data)
        await writer.drain()

    async def _send_raw(self, writer, status: int, message: str) -> None:
        """An answer outside h11's state machine, for a request it could not parse."""
        body = json_bytes({"error": message})
        reason = _reason(status)
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"server: %s\r\nconnection: close\r\n\r\n" % (status, reason, len(body), SERVER_NAME)
        )
        await self._write(writer, head + body)


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After an answer given before the body was read (429, 504), half-close and
    discard what the client still sends for a moment, so that it reads the answer
    instead of a reset on its next write (a lingering close, as nginx does)."""
    if writer.is_closing() or not writer.can_write_eof():
        return
    await writer.drain()
    writer.write_eof()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(LINGER_SECONDS):
            while await reader.read(READ_SIZE):
                pass


def _peer(writer: asyncio.StreamWriter) -> str:
    """``host:port`` of the client (``[host]:port`` for IPv6), as the access log shows it."""
    address = writer.get_extra_info("peername")
    if not isinstance(address, tuple) or len(address) < 2:
        return "-"
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reason(status: int) -> bytes:
    return _PHRASES.get(status, b"Client Closed Request" if status == 499 else b"")


def _content_length(request: h11.Request) -> int | None:
    for name, value in request.headers:
        if name == b"content-length":
            return int(value)  # h11 checked it: at most 20 ASCII digits
    return None


def _over_limit(size: int, limit: int) -> str:
    return f"request body of {size} bytes is over the limit of {limit}"
