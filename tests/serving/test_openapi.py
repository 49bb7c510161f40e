"""The REST API's OpenAPI description (``GET /v1/openapi.json``): valid OpenAPI 3.1,
naming exactly the routes the router answers, and held to by a live ``dann-serve
serve`` under schemathesis: no 5xx beyond classify's and regress's documented 501, and
every answer's code, content type and body as described."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from support.helpers import ROOT, rest

from bench.fuzz_api import schemathesis_command, served_copy
from dann_client.contract import SIGNATURE_TABLE
from dann_serve.serving import openapi, rest_api
from dann_serve.serving.limits import Limits
from dann_serve.serving.registry import ModelRegistry

CONFIG = ROOT / "schemathesis.toml"
EXAMPLES = 25  # per operation and phase here; `python -m bench.fuzz_api` runs 100
METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD")


def test_the_description_is_valid_openapi_3_1() -> None:
    description = openapi.description()
    assert description["openapi"].startswith("3.1")
    validate(description)


def _literal_suffixes() -> set[str]:
    """The route endings the router's own patterns spell out (``/metadata``,
    ``:predict``, ``/monitor``...): read from its code, not listed here."""
    patterns = rest_api._URL.pattern + rest_api._MONITOR_URL.pattern
    return set(re.findall(r"[/:][a-z_]+(?=[|)$])", patterns))


def _described(description: dict) -> set[tuple[str, re.Pattern]]:
    """(method, URL pattern) of each operation the description has: a number where its
    parameter is an integer, a path segment (no ``/`` or ``:``) where it is a string."""
    parameters = description["components"]["parameters"]
    segment = {
        name: "[0-9]+" if parameter["schema"]["type"] == "integer" else "[^/:]+"
        for name, parameter in parameters.items()
    }
    found = set()
    for template, operations in description["paths"].items():
        pattern = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
        pattern = re.sub(r"{([a-z]+)}", lambda name: segment[name[1]], pattern)
        found |= {(method.upper(), re.compile(f"^{pattern}$")) for method in operations}
    return found


def test_exactly_the_routes_the_router_answers_are_described(tmp_path: Path) -> None:
    """Every method on every URL made of the router's own route endings, after each way
    of naming a version (and a few endings and methods it has not): answered by a route
    (anything but "Malformed request") if and only if the description has it."""
    suffixes = _literal_suffixes() | {"", "/versions", "/labels", ":explain", "/status"}
    assert {"/metadata", ":predict", ":classify", ":regress", "/monitor"} <= suffixes
    prefixes = ["/v1/models/dann", "/v1/models/dann/versions/1", "/v1/models/dann/labels/x"]
    targets = [p + s for p in prefixes for s in suffixes]
    targets += ["/v1/models", "/v1/models/", "/v1/models/dann/versions/x", openapi.OPENAPI_PATH]
    app = rest_api.RestApi(ModelRegistry(tmp_path), Limits())  # no models: nothing to load
    described = _described(openapi.description())
    for method in METHODS:
        for target in targets:
            _, body = app(method, target, b"{}")
            answered = not json.loads(body).get("error", "").startswith("Malformed request")
            listed = any(m == method and url.match(target) for m, url in described)
            assert answered == listed, (method, target, body)


def test_the_fuzzing_dictionary_holds_the_exports_signatures() -> None:
    """schemathesis.toml sends half the predict bodies to a signature the export has."""
    config = tomllib.loads(CONFIG.read_text())
    names = {row.name for row in SIGNATURE_TABLE} | {a for r in SIGNATURE_TABLE for a in r.aliases}
    assert set(config["dictionaries"]["signatures"]["values"]) == names


@pytest.fixture(scope="module")
def server(exported_model: Path, start_server, tmp_path_factory):
    """The export served with label ``stable`` on its version 1, as the fuzzing
    dictionaries of schemathesis.toml name them."""
    return start_server(served_copy(exported_model.parent.parent, tmp_path_factory.mktemp("api")))


def test_the_server_serves_the_description(server) -> None:
    code, body = rest(server, openapi.OPENAPI_PATH)
    assert code == 200
    assert body == json.loads(json.dumps(openapi.description()))


def test_the_live_server_answers_as_described(server, tmp_path: Path) -> None:
    """schemathesis (every phase, EXAMPLES per operation) finds no 5xx (classify's and
    regress's documented 501 aside) and no answer whose status, content type, headers
    or body the description does not foresee; and the server logs no traceback."""
    command = schemathesis_command(server.rest_url, tmp_path, EXAMPLES, seed=1)
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert re.search(r"\d+ generated, \d+ passed", run.stdout), run.stdout[-5000:]
    assert "Traceback" not in server.log()
