"""``dann-client monitor``'s choice of server and its text table, without a server
(the real one is in tests/serving/test_monitor_server.py)."""

from __future__ import annotations

import json

import pytest

from dann_client.errors import UsageError
from dann_client.monitor import DEFAULT_REST_SERVER, monitor_lines, rest_server

FIGURES = {
    "model": "dann",
    "version": 3,
    "images": 1000,
    "mean_confidence": 0.9512,
    "class_shares": [0.1] * 10,
    "estimated_accuracy": None,
    "estimate_reliable": False,
    "drift": {"p_value": 3.1e-09, "shifted": True},
    "unreliable_because": ["confidence_disagrees", "class_shares_moved"],
    "window": 1000,
    "reference": True,
    "dropped": 7,
}


def test_the_server_is_a_rest_url_from_the_option_the_environment_or_the_default(monkeypatch):
    monkeypatch.delenv("DANN_SERVER", raising=False)
    assert rest_server(None) == DEFAULT_REST_SERVER == "http://localhost:8501"
    monkeypatch.setenv("DANN_SERVER", "https://models.example/tf")
    assert rest_server(None) == "https://models.example/tf"
    assert rest_server("http://other:9000") == "http://other:9000"
    monkeypatch.setenv("DANN_SERVER", "localhost:8500")
    with pytest.raises(UsageError, match=r"^\$DANN_SERVER 'localhost:8500': the monitor is read"):
        rest_server(None)
    with pytest.raises(UsageError, match=r"^--server 'h:1': .* gRPC API has no monitor call"):
        rest_server("h:1")


def test_the_table_shows_unknown_figures_as_a_dash_and_the_grounds_below():
    model, header, row, shares, reasons = monitor_lines("dann", [FIGURES], "text")
    assert model == "model dann"
    assert header.split() == [
        "version", "images", "window", "confidence", "accuracy~", "reliable", "drift",
        "p", "shifted", "dropped",
    ]  # fmt: skip
    assert row.split() == ["3", "1000", "1000", "0.951", "-", "no", "3.1e-09", "YES", "7"]
    assert shares == "version 3 class shares  " + " ".join(f"{d}:0.100" for d in range(10))
    assert reasons == "version 3 estimate unreliable: confidence_disagrees, class_shares_moved"
    assert monitor_lines("dann", [], "text") == ["model dann: no version served"]
    assert [json.loads(line) for line in monitor_lines("dann", [FIGURES], "json")] == [FIGURES]
