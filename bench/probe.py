"""Replay hostile requests against a ``dann-serve serve`` (or TF Serving), and run
``dann-client`` as a careless user would.

One line per case: what was sent, what came back, what was expected, and whether a good
request (REST and gRPC) was answered right after. The cases, by the numbers the report
prints: 1 request smuggling, 2 numbers and lengths too big, 3 a body shorter than its
Content-Length, 4 a client that hangs up, 11 non-numbers in an image, 12 the REST idle
timeout (one byte every few seconds) and b the resource bounds of docs/RELIABILITY.md
(batch, body, in-flight requests), all here; peers using up what the server has a fixed
amount of, 5 a burst of connections, 6 gRPC shape amplification, 13 64 gRPC calls that
never send their message, 17 64 REST bodies sent a byte a second, 19 a log flood of
messages that are no protocol buffer, 22 a 4,000-header request head
(``probe_exhaustion``); memory, 7 after large REST requests (7a, 7b) and gRPC requests
under 8 MiB (7c), 8 over version add/delete cycles (``probe_memory``); the model tree,
14 a version folder past int64, 15 an emptied models.config, 16 a version folder named
``²`` (``probe_versions``); the client, 18 its read deadline against a server answering
a byte a second, 20 timeouts of inf, nan and 1e300, 21 a port past 65535, 23 a directory
it may not read (``probe_client``; 23 cannot run as root, who reads any directory).
Cases 9 and 10, the client's first round, are covered by its own tests in client/tests.

    python -m bench.probe --model-dir models            # starts a server itself
    python -m bench.probe --grpc 127.0.0.1:8500 --rest http://127.0.0.1:8501

With ``--model-dir`` the script starts ``dann-serve serve`` on a private copy of the
tree, can read its memory and log and edit its tree (cases 7, 8, 14-16 and 19 need
that) and checks its log for tracebacks at the end. ``--json PATH`` writes every case's
line for docs/PERFORMANCE.md (``make bench`` does). Exit status 0 when every case that
could run answered as expected.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from bench import probe_client, probe_exhaustion, probe_versions
from bench._common import Result, argument_parser
from bench.probe_memory import case_memory
from bench.probe_wire import (
    MODEL,
    NOT_RUN,
    RECORDS,
    RESULTS,
    Target,
    describe,
    image_json,
    json_body,
    not_run,
    post,
    predict,
    raw_http,
    report,
    tally,
)
from harness.server_process import LocalServer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def case_smuggling(target: Target) -> None:
    smuggled = b"GET /v1/models/SMUGGLED HTTP/1.1\r\nHost: probe\r\n\r\n"
    routes = [
        ("POST", f"/v1/models/{MODEL}:classify"),
        ("POST", f"/v1/models/{MODEL}:regress"),
        ("POST", f"/v1/models/{MODEL}/metadata"),
        ("POST", "/v1/unknown/path"),
        ("GET", f"/v1/models/{MODEL}"),
    ]
    for number, (method, path) in enumerate(routes):
        head = f"{method} {path} HTTP/1.1\r\nHost: probe\r\nContent-Length: {len(smuggled)}\r\n\r\n"
        answers, ended = raw_http(target, head.encode() + smuggled)
        report(
            f"1{'abcde'[number]}",
            f"{method} {path} whose body is a GET of /v1/models/SMUGGLED",
            describe(answers, ended),
            "exactly 1 response, never one for SMUGGLED",
            len(answers) == 1 and b"SMUGGLED" not in answers[0][1],
            target,
        )


def case_big_numbers(target: Target) -> None:
    body = f'{{"inputs": [{image_json("1" + "0" * 399)}]}}'.encode()
    cases = [
        ("2a", "a 400-digit integer in 'inputs'", post(f"/v1/models/{MODEL}:predict", body)),
        (
            "2b",
            "GET /versions/9223372036854775808 (2^63)",
            f"GET /v1/models/{MODEL}/versions/{2**63} HTTP/1.1\r\nHost: p\r\n\r\n".encode(),
        ),
        (
            "2c",
            "GET /versions/ followed by 5,000 digits",
            f"GET /v1/models/{MODEL}/versions/{'9' * 5000} HTTP/1.1\r\nHost: p\r\n\r\n".encode(),
        ),
        (
            "2d",
            "a 5,000-digit Content-Length",
            f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: p\r\n"
            f"Content-Length: {'9' * 5000}\r\n\r\n{{}}".encode(),
        ),
        (
            "2e",
            "Content-Length: \u00b2 (a digit to str.isdigit, not to int)",
            f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: p\r\n"
            "Content-Length: \u00b2\r\n\r\n{}".encode("latin-1"),
        ),
    ]
    for case, sent, payload in cases:
        answers, ended = raw_http(target, payload)
        status = answers[0][0] if answers else None
        report(case, sent, describe(answers, ended), "400", status == 400, target)


def case_short_body(target: Target) -> None:
    payload = (
        f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: p\r\nContent-Length: 5000\r\n\r\n"
    ).encode() + b'{"instances": [[[[0.5'
    start = time.monotonic()
    answers, ended = raw_http(target, payload, half_close=False, wait=target.deadline + 10)
    took = time.monotonic() - start
    status = answers[0][0] if answers else None
    report(
        "3a",
        "21 of 5000 body bytes, then silence (connection kept open)",
        f"{describe(answers, ended)} after {took:.1f} s",
        f"504 at the REST deadline ({target.deadline:g} s), no thread held",
        status == 504 and took < target.deadline + 5,
        target,
    )
    start = time.monotonic()
    answers, ended = raw_http(target, payload, half_close=True)
    took = time.monotonic() - start
    status = answers[0][0] if answers else None
    report(
        "3b",
        "21 of 5000 body bytes, then end of stream",
        f"{describe(answers, ended)} after {took:.1f} s",
        "400 at once",
        status == 400 and took < 2,
        target,
    )


def case_hang_up(target: Target) -> None:
    images = np.random.default_rng(4).random((512, 32, 32, 3), dtype=np.float32)
    body = json_body({"instances": images.tolist()})
    for _ in range(3):
        with socket.create_connection((target.rest_host, target.rest_port), timeout=30) as sock:
            sock.sendall(post(f"/v1/models/{MODEL}:predict", body))
            # close at once with a reset: the answer has nowhere to go
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
    time.sleep(3)
    log = target.server.log() if target.server else ""
    bad = log.count("Traceback") + log.count("internal error")
    report(
        "4",
        "3 predicts of 512 images, each connection reset before the answer",
        f"{bad} traceback/internal-error lines in the log" if target.server else "(log unseen)",
        "nothing logged as an error",
        bad == 0,
        target,
    )


def case_non_numbers(target: Target) -> None:
    for number, value in enumerate(["null", "true", '"0.5"']):
        body = f'{{"instances": [{image_json(value)}]}}'.encode()
        answers, ended = raw_http(target, post(f"/v1/models/{MODEL}:predict", body))
        status = answers[0][0] if answers else None
        report(
            f"11{'abc'[number]}",
            f"{value} as one pixel of a correctly shaped image",
            describe(answers, ended),
            "400 (TF Serving: JSON Value ... is not of expected type: float)",
            status == 400,
            target,
        )


def case_drip(target: Target) -> None:
    """One header byte every 2 s: the connection must end by the request deadline."""
    payload = f"GET /v1/models/{MODEL} HTTP/1.1\r\nHost: probe\r\n".encode()
    start = time.monotonic()
    closed_after = None
    with socket.create_connection((target.rest_host, target.rest_port), timeout=5) as sock:
        for index in range(len(payload)):
            try:
                sock.sendall(payload[index : index + 1])
                sock.settimeout(2)
                if sock.recv(1024) == b"":
                    closed_after = time.monotonic() - start
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - start
                break
            if time.monotonic() - start > target.deadline + 10:
                break
    got = f"closed after {closed_after:.1f} s" if closed_after else "still open"
    report(
        "12",
        "a request's head one byte every 2 s (REST idle timeout)",
        got,
        f"closed by the REST deadline ({target.deadline:g} s)",
        closed_after is not None and closed_after < target.deadline + 3,
        target,
    )


def case_bounds(target: Target) -> None:
    import grpc

    batch = np.zeros((1025, 32, 32, 3), np.float32)
    answers, ended = raw_http(
        target, post(f"/v1/models/{MODEL}:predict", json_body({"instances": batch.tolist()}))
    )
    status = answers[0][0] if answers else None
    report(
        "b1", "REST predict of 1025 images", describe(answers, ended), "400", status == 400, target
    )
    try:
        predict(target, batch)
        got, code = "OK", None
    except grpc.RpcError as error:
        code = error.code()
        got = f"{code.name}: {error.details()[:90]}"
    report(
        "b2",
        "gRPC predict of 1025 images",
        got,
        "INVALID_ARGUMENT",
        code == grpc.StatusCode.INVALID_ARGUMENT,
        target,
    )
    head = f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: p\r\n"
    head += f"Content-Length: {1 << 40}\r\n\r\n{{"
    start = time.monotonic()
    answers, ended = raw_http(target, head.encode())
    status = answers[0][0] if answers else None
    report(
        "b3",
        "REST Content-Length of 1 TiB",
        f"{describe(answers, ended)} in {time.monotonic() - start:.2f} s",
        "429 at once, body unread",
        status == 429,
        target,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--grpc", help="HOST:PORT of a running server")
    parser.add_argument("--rest", help="URL of its REST API (http://HOST:PORT)")
    parser.add_argument("--model-dir", type=Path, help="start dann-serve serve on a copy of it")
    parser.add_argument("--deadline", type=float, default=30.0, help="the server's REST deadline")
    parser.add_argument("--skip", default="", help="comma-separated cases to leave out")
    parser.add_argument("--json", type=Path, help="write every case's line there")
    parser.add_argument(
        "--serve-option",
        action="append",
        default=[],
        help="passed on to dann-serve serve (repeatable)",
    )
    args = parser.parse_args(argv)
    if not args.model_dir and not (args.grpc and args.rest):
        parser.error("give --model-dir, or --grpc and --rest")
    return args


CASES = {
    "1": case_smuggling,
    "2": case_big_numbers,
    "3": case_short_body,
    "4": case_hang_up,
    "11": case_non_numbers,
    "12": case_drip,
    "b": case_bounds,
    **probe_exhaustion.CASES,
    **probe_client.CASES,
}


def run_one(name: str, run: Callable[[Target], None], target: Target) -> None:
    """One case; a server broken enough to make the case itself fail fails that case
    (its line names the error) and the probe goes on to the next."""
    try:
        run(target)
    except Exception as error:  # any failure of a case is the server's answer to it
        got = f"the case stopped: {type(error).__name__}: {str(error)[:200]!r}"
        tally(name, False, sent=run.__name__, got=got)
        print(f"FAIL {name:4} {run.__name__} | {got}", flush=True)


def run_cases(target: Target, skip: set[str]) -> None:
    """Every case not in ``skip``; those needing the server's process only with it."""
    for name, run in CASES.items():
        if name not in skip:
            run_one(name, run, target)
    if target.server is not None and not {"7", "8"} <= skip:
        run_one("7", lambda target: case_memory(target, skip), target)  # and 8
    for name, run in probe_versions.CASES.items():
        if name in skip:
            continue
        if target.server is None:
            not_run(name, run.__doc__ or name, "needs the private model tree (--model-dir)")
        else:
            run_one(name, run, target)


def summary() -> str:
    failed = [r["case"] for r in RECORDS if r["ok"] is False]
    text = f"{sum(RESULTS)} of {len(RESULTS)} as expected"
    text += f"; failed: {', '.join(failed)}" if failed else ""
    return text + (f"; not runnable here: {', '.join(NOT_RUN)}" if NOT_RUN else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = Result("probe", args.json) if args.json else None
    work = Path(tempfile.mkdtemp(prefix="probe-"))
    server = None
    if args.model_dir:
        shutil.copytree(args.model_dir, work / "models")
        server = LocalServer(work / "models", work / "serve.log", *args.serve_option)
        server.wait_ready()
        grpc_address, rest_url = server.grpc_address, server.rest_url
    else:
        grpc_address, rest_url = args.grpc, args.rest
    url = urlsplit(rest_url)
    target = Target(grpc_address, url.hostname, url.port, server, args.deadline)
    print(
        f"probing gRPC {grpc_address}, REST {rest_url} (load average "
        f"{os.getloadavg()[0]:.1f}); cases 9 and 10 are the client's: see client/tests"
    )
    try:
        run_cases(target, set(filter(None, args.skip.split(","))))
    finally:
        if server is not None:
            server.stop()
            log = server.log()
            tracebacks = log.count("Traceback")
            print(
                f"server log: {len(log.splitlines())} lines, {tracebacks} tracebacks "
                f"({work / 'serve.log'})"
            )
            tally("log", tracebacks == 0, sent="all of the above", got=f"{tracebacks} tracebacks")
    print(summary())
    if result is not None:
        result.write({"summary": summary(), "passed": sum(RESULTS), "cases": RECORDS})
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
