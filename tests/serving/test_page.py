"""The web page on the REST port, over sockets: its files and their security headers,
the size budget of its script and style, the routes it reads (``GET /v1/models``) and
its own (``POST /ui/model-input``), and ``serve --no-ui``. The page in a real browser
is tests/browser/test_page_browser.py."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dann_client.contract import MIB
from dann_client.preprocessing import load_image
from dann_serve.serving.limits import Limits

ASSETS = {
    "/": "text/html",
    "/ui/page.js": "text/javascript",
    "/ui/page.css": "text/css",
    "/ui/icon.svg": "image/svg+xml",
}
BUDGET_BYTES = 100 * 1000  # the page's JavaScript and CSS together
LIMITS = Limits(max_tensor_bytes=MIB)  # a file over it costs little to send


def fetch(url: str, data: bytes | None = None, method: str | None = None):
    """The status, headers and body of one request (an HTTP error is an answer too)."""
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture(scope="module")
def model_dir(exported_model: Path, tmp_path_factory) -> Path:
    """A copy of the export, its version 1 labelled ``stable``."""
    from bench.fuzz_api import served_copy

    return served_copy(exported_model.parent.parent, tmp_path_factory.mktemp("page"))


def _started(model_dir: Path, ui: bool):
    from dann_serve.serving.registry import ModelRegistry
    from dann_serve.serving.rest_api import rest_server

    registry = ModelRegistry(model_dir)
    registry.poll()
    server = rest_server("127.0.0.1", 0, registry, LIMITS, workers=2, ui=ui)
    server.start()
    return registry, server


@pytest.fixture(scope="module")
def url(model_dir: Path):
    """The REST front end with its page, over the export, in this process."""
    registry, server = _started(model_dir, ui=True)
    yield f"http://127.0.0.1:{server.port}"
    server.stop()
    registry.stop()


@pytest.mark.parametrize("path", sorted(ASSETS))
def test_the_page_and_its_files_carry_a_strict_policy(url: str, path: str) -> None:
    status, headers, body = fetch(url + path)
    assert status == 200 and body
    assert headers["content-type"].startswith(ASSETS[path])
    policy = dict(
        part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    for directive in ("script-src", "style-src", "connect-src", "img-src"):
        assert policy[directive] == "'self'", directive  # no inline, no eval, no other host
    assert policy["frame-ancestors"] == "'none'"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


class _Markup(HTMLParser):
    """What in the page's HTML a strict policy would refuse, and what it links to."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.links: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "style" or "style" in found:
            self.inline.append(f"style in <{tag}>")
        self.inline += [f"{name} in <{tag}>" for name in found if name.startswith("on")]
        if tag == "script" and not found.get("src"):
            self.inline.append("a <script> without src")
        self.links += [value for name, value in attrs if name in ("src", "href") and value]
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("script text")


def test_the_page_has_no_inline_script_or_style_and_links_only_to_itself(url: str) -> None:
    markup = _Markup()
    markup.feed(fetch(url + "/")[2].decode())
    assert markup.inline == []
    assert markup.links and all(link.startswith("/ui/") for link in markup.links), markup.links


def test_its_script_and_style_are_under_the_budget(url: str) -> None:
    sizes = {path: len(fetch(url + path)[2]) for path in ("/ui/page.js", "/ui/page.css")}
    assert sum(sizes.values()) < BUDGET_BYTES, sizes


def test_the_page_is_read_only_and_knows_only_its_files(url: str) -> None:
    status, headers, body = fetch(url + "/", data=b"{}", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert json.loads(body) == {"error": "POST is not allowed on /"}
    status, headers, body = fetch(url + "/ui/nothing.js")
    assert status == 404 and "/ui/nothing.js" in json.loads(body)["error"]
    assert headers["x-content-type-options"] == "nosniff"
    status, _, body = fetch(url + "/", method="HEAD")
    assert status == 200 and body == b""
    assert fetch(url + "/ui/model-input")[0] == 405  # it takes a file, nothing to read


def test_the_models_route_lists_versions_states_and_labels(url: str) -> None:
    status, _, body = fetch(url + "/v1/models")
    assert status == 200
    [model] = json.loads(body)["models"]
    assert model["name"] == "dann"
    assert model["versions"] == [{"version": 1, "state": "AVAILABLE", "error": ""}]
    assert model["labels"] == {"stable": 1}
    assert fetch(url + "/v1/models", data=b"{}", method="POST")[0] == 404


def test_model_input_is_the_file_as_the_client_preprocesses_it(
    url: str, tiny_files: list[Path], tmp_path: Path
) -> None:
    from PIL import Image

    large = tmp_path / "large.png"  # framed by the client's rule, not passed through
    Image.open(tiny_files[3]).convert("L").resize((96, 96)).save(large)
    for path in (tiny_files[0], large):
        status, _, body = fetch(url + "/ui/model-input", data=path.read_bytes(), method="POST")
        assert status == 200, body
        assert json.loads(body)["pixels"] == load_image(path).tolist()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "it is empty"),
        (b"GIF89a" + b"\0" * 4, "the image file: "),
        (b"\0" * (LIMITS.max_tensor_bytes + 1), "over the limit of"),
    ],
    ids=["empty", "truncated", "too large"],
)
def test_model_input_refuses_what_is_no_image_in_one_line(url: str, data: bytes, reason) -> None:
    status, _, body = fetch(url + "/ui/model-input", data=data, method="POST")
    assert status == 400
    error = json.loads(body)["error"]
    assert reason in error and "\n" not in error


def test_without_the_page_its_paths_are_the_apis_404(model_dir: Path) -> None:
    registry, server = _started(model_dir, ui=False)
    try:
        for path in ("/", "/ui/page.js", "/ui/model-input"):
            status, _, body = fetch(f"http://127.0.0.1:{server.port}{path}")
            assert status == 404 and re.match(r"Malformed request: GET ", json.loads(body)["error"])
    finally:
        server.stop()
        registry.stop()


@pytest.mark.slow
def test_serve_no_ui_answers_404_at_the_root(model_dir: Path, start_server) -> None:
    served = start_server(model_dir, "--no-ui", "--no-monitor")
    assert fetch(served.rest_url + "/")[0] == 404
    assert fetch(served.rest_url + "/v1/models/dann")[0] == 200
    served.stop()


@pytest.mark.parametrize(
    ("path", "schema"), [("/ui/model-input", "ModelInput"), ("/v1/models", "ModelList")]
)
def test_the_pages_json_answers_are_as_described(
    url: str, tiny_files: list[Path], path: str, schema: str
) -> None:
    """The fuzzer never sends a readable image, so it never sees these 200 answers."""
    from jsonschema import Draft202012Validator

    from dann_serve.serving import openapi

    posted = {"data": tiny_files[0].read_bytes(), "method": "POST"} if "ui" in path else {}
    status, _, body = fetch(url + path, **posted)
    assert status == 200, body
    root = {"$ref": f"#/components/schemas/{schema}", **openapi.description()}
    Draft202012Validator(root).validate(json.loads(body))
