"""The server's web page on the REST port: what it serves, its monitor, and "try it".

Plain files shipped in the package (``page/``), read once, served at fixed paths, with
no build step and nothing fetched from elsewhere: the page works offline and with the
network cut off from everything but this server. Its script calls the REST API like any
client (``GET /v1/models``, each model's ``/monitor``, ``:predict`` with
``predict_image`` and ``classify_domain``); the one route of its own,
``POST /ui/model-input``, answers an image file as the model sees it, 32x32 RGB, by the
client's preprocessing (``dann-client preprocess``), which ``predict_image``'s graph
follows and whose answer ``classify_domain`` is then asked about. Nothing here changes
the server's state.

Every answer carries a strict Content-Security-Policy (scripts, styles and images from
this origin only: no inline script or style; no framing), ``nosniff`` and no referrer.
"""

from __future__ import annotations

from importlib import resources

from dann_client.errors import ImageError
from dann_client.preprocessing import image_from_bytes
from dann_serve.serving.http_server import JSON_TYPE, Answer, json_bytes
from dann_serve.serving.limits import Limits

MODEL_INPUT_PATH = "/ui/model-input"
ASSET_PREFIX = "/ui/"
# path -> (file under page/, content type)
FILES = {
    "/": ("index.html", b"text/html; charset=utf-8"),
    "/ui/page.js": ("page.js", b"text/javascript; charset=utf-8"),
    "/ui/page.css": ("page.css", b"text/css; charset=utf-8"),
    "/ui/icon.svg": ("icon.svg", b"image/svg+xml"),
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


def _json(status: int, payload: dict, *headers: tuple[bytes, bytes]) -> Answer:
    return status, json_bytes(payload), JSON_TYPE, (*SECURITY_HEADERS, *headers)


def _not_allowed(method: str, path: str, allowed: bytes) -> Answer:
    return _json(405, {"error": f"{method} is not allowed on {path}"}, (b"allow", allowed))


class Page:
    """The page's files and its one route: ``(method, target, body) -> Answer | None``
    (None: not the page's path, for the REST API to answer)."""

    def __init__(self, limits: Limits) -> None:
        folder = resources.files("dann_serve.serving") / "page"
        self.files = {
            path: ((folder / name).read_bytes(), content_type)
            for path, (name, content_type) in FILES.items()
        }
        # As --max-tensor-mb bounds predict_image's files: their bytes, and the pixels
        # their headers declare at 4 bytes each.
        self.max_bytes = limits.max_tensor_bytes
        self.max_pixels = max(1, limits.max_tensor_bytes // 4)

    def __call__(self, method: str, target: str, body: bytearray) -> Answer | None:
        path = target.split("?", 1)[0]
        if path in self.files:
            if method not in ("GET", "HEAD"):
                return _not_allowed(method, path, b"GET, HEAD")
            data, content_type = self.files[path]
            return 200, data, content_type, (*SECURITY_HEADERS, (b"cache-control", b"no-cache"))
        if path == MODEL_INPUT_PATH:
            if method != "POST":
                return _not_allowed(method, path, b"POST")
            return self._model_input(body)
        if path.startswith(ASSET_PREFIX):
            return _json(404, {"error": f"no such file: {path[:200]}"})
        return None

    def _model_input(self, data: bytearray) -> Answer:
        """The image file ``data`` as the model sees it: uint8 ``[32, 32, 3]`` as nested
        JSON lists; 400 with the reason when it is no image the client can read."""
        if not data:
            return _json(400, {"error": "the request body must be an image file; it is empty"})
        if len(data) > self.max_bytes:
            message = f"the image file of {len(data)} bytes is over the limit of {self.max_bytes}"
            return _json(400, {"error": message})
        try:
            pixels = image_from_bytes(bytes(data), max_pixels=self.max_pixels)
        except ImageError as error:
            return _json(400, {"error": f"the image file: {error}"})
        return _json(200, {"pixels": pixels.tolist()})
