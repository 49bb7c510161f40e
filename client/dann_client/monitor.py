"""``dann-client monitor``: what a dann-serve server's live monitor sees, over REST.

``dann-serve serve`` keeps, per model version, a window of what it answered and holds
it to the reference the export recorded; ``GET /v1/models/<name>[/versions/<v>|
/labels/<l>]/monitor`` returns the figures. REST only: TensorFlow Serving's gRPC API
has no call for them (nor does TensorFlow Serving itself keep them). Text is a table
for people, a row per version and its class shares below; ``--json`` one object per
version and line, as the server sent it.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from dann_client.connect import is_rest
from dann_client.contract import REST_PORT, SERVER_ENVIRONMENT
from dann_client.errors import ServerRejected, UsageError

if TYPE_CHECKING:
    from dann_client.api import ModelRef
    from dann_client.rest import RestTransport

DEFAULT_REST_SERVER = f"http://localhost:{REST_PORT}"
_KEYS = ("version", "images", "mean_confidence", "class_shares", "estimated_accuracy", "drift")


def rest_server(server: str | None) -> str:
    """The REST URL to read: ``--server``, else ``$DANN_SERVER``, else the local
    server's REST port; a gRPC ``host:port`` is a usage error that says why."""
    chosen = server or os.environ.get(SERVER_ENVIRONMENT) or DEFAULT_REST_SERVER
    if not is_rest(chosen):
        where = "--server" if server else f"${SERVER_ENVIRONMENT}"
        raise UsageError(
            f"{where} {chosen!r}: the monitor is read over REST (TensorFlow Serving's gRPC "
            f"API has no monitor call): give http://HOST:{REST_PORT}"
        )
    return chosen


def fetch(transport: RestTransport, model: ModelRef) -> list[dict[str, Any]]:
    """The monitor's figures of the version ``model`` names, or of each served version
    of it (newest first) when it names none."""
    from dann_client.rest_service import model_path

    payload = transport.request("GET", model_path(model) + "/monitor")
    named = model.version is not None or model.label is not None
    versions = [payload] if named else payload.get("versions")
    if not isinstance(versions, list) or not all(_readable(v) for v in versions):
        raise ServerRejected(
            f"server {transport.address} sent no monitor figures (is it dann-serve serve?)",
            "DATA_LOSS",
        )
    return versions


def _readable(figures: Any) -> bool:
    return isinstance(figures, dict) and all(key in figures for key in _KEYS)


def monitor_lines(model: str, versions: list[dict[str, Any]], fmt: str) -> list[str]:
    """The figures in ``fmt``: ``json``, one object per version; ``text``, a table."""
    if fmt == "json":
        return [json.dumps(figures) for figures in versions]
    if not versions:
        return [f"model {model}: no version served"]
    header = (
        f"{'version':>7}  {'images':>6}  {'window':>6}  {'confidence':>10}  "
        f"{'accuracy~':>9}  {'reliable':<8}  {'drift p':>8}  {'shifted':<7}  {'dropped':>7}"
    )
    lines = [f"model {model}", header]
    for figures in versions:
        lines.append(_row(figures))
    for figures in versions:
        shares = " ".join(
            f"{digit}:{share:.3f}" for digit, share in enumerate(figures["class_shares"])
        )
        lines.append(f"version {figures['version']} class shares  {shares}")
        reasons = figures.get("unreliable_because") or []
        if reasons:
            lines.append(f"version {figures['version']} estimate unreliable: {', '.join(reasons)}")
    return lines


def _row(figures: dict[str, Any]) -> str:
    drift = figures["drift"]
    return (
        f"{figures['version']:>7}  {figures['images']:>6}  "
        f"{_number(figures.get('window'), 'd'):>6}  "
        f"{_number(figures['mean_confidence'], '.3f'):>10}  "
        f"{_number(figures['estimated_accuracy'], '.3f'):>9}  "
        f"{'yes' if figures.get('estimate_reliable') else 'no':<8}  "
        f"{_number(drift.get('p_value'), '.2g'):>8}  "
        f"{'YES' if drift.get('shifted') else 'no':<7}  {_number(figures.get('dropped'), 'd'):>7}"
    )


def _number(value: Any, spec: str) -> str:
    """``value`` formatted, or ``-`` where the server knows none (null)."""
    return "-" if value is None else format(value, spec)
