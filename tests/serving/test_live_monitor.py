"""The live monitor inside one process: the request path only enqueues (a full queue
drops and counts, the request is answered all the same), which answers count, a
verdict change is one log line, versions that go are forgotten, and the route
answers plainly when the monitor is off."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from support.helpers import outputs, predict_request
from support.softmax_streams import IN_DISTRIBUTION, SHIFTED

from dann_serve.drift import reference
from dann_serve.serving.observers import Served


@pytest.fixture()
def registry(served_registry):
    return served_registry


def test_the_request_path_only_enqueues_and_a_full_queue_drops_and_counts(registry):
    from prometheus_client import generate_latest

    from dann_serve.serving import live_monitor, monitoring, observers, service

    monitor = live_monitor.LiveMonitor(registry, capacity=100, queue_size=2)  # no worker
    observers.add(monitor)
    images = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    for _ in range(3):
        response = service.predict(registry, predict_request(images, "predict_label"))
        assert outputs(response)["probabilities"].shape == (4, 10)  # answered, all three
    service.predict(registry, predict_request(images, "classify_domain"))  # never counted
    assert monitor.version_json("dann", 1)["images"] == 0  # nothing computed on the way
    assert monitor.dropped() == {("dann", 1): 1}
    assert monitor.drain() == 2
    figures = monitor.version_json("dann", 1)
    assert (figures["images"], figures["dropped"]) == (8, 1)

    live_monitor._ACTIVE = monitor
    try:
        page = generate_latest(monitoring.REGISTRY).decode()
    finally:
        live_monitor._ACTIVE = None
    assert 'dann_serve_monitor_dropped_total{model_name="dann",version="1"} 1.0' in page
    assert 'dann_serve_monitor_images{model_name="dann",version="1"} 8.0' in page


def test_the_monitor_route_says_when_the_monitor_is_off(registry):
    import json

    from dann_serve.serving.limits import Limits
    from dann_serve.serving.rest_api import RestApi

    status, body = RestApi(registry, Limits())("GET", "/v1/models/dann/monitor", b"")
    assert status == 400
    assert "the monitor is off" in json.loads(body)["error"]


@dataclass
class FakeVersion:
    """What the monitor reads of a loaded version."""

    name: str
    version: int
    path: Path
    identity: int = 0


class FakeRegistry:
    """Versions served by hand (all AVAILABLE, state 30), each with the reference the
    tests built for it."""

    def __init__(self) -> None:
        self.versions: dict[tuple[str, int], FakeVersion] = {}

    def get(self, name: str, version: int | None = None, label: str = "") -> FakeVersion:
        from dann_serve.serving.status import not_found

        found = self.versions.get((name, version or 0))
        if found is None:
            raise not_found(f"Servable not found for request: Specific({name}, {version})")
        return found

    def status(self, name: str, version: int | None = None) -> list[tuple[int, int, str]]:
        return [(v, 30, "") for (n, v) in sorted(self.versions, reverse=True) if n == name]

    def model_names(self) -> list[str]:
        return sorted({name for name, _ in self.versions})


@pytest.fixture()
def fake_registry(tmp_path: Path) -> FakeRegistry:
    """Model ``m`` version 1, whose reference is in-distribution synthetic traffic."""
    source, labels = IN_DISTRIBUTION.draw(3000, seed=300)
    built = reference.build_reference(IN_DISTRIBUTION.draw(2000, seed=301)[0], source, labels)
    path = tmp_path / "m" / "1"
    (path / reference.VERSION_PATH).parent.mkdir(parents=True)
    reference.save(built, path / reference.VERSION_PATH)
    registry = FakeRegistry()
    registry.versions[("m", 1)] = FakeVersion("m", 1, path)
    return registry


def feed(monitor, rows: np.ndarray, batch: int = 50) -> None:
    """Answers of ``m`` version 1, as requests of ``batch`` images, then drained."""
    for start in range(0, len(rows), batch):
        monitor.observe(
            Served("m", 1, "predict_label", {}, {"probabilities": rows[start:][:batch]})
        )
    monitor.drain()


def verdict_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "shifted" in r.getMessage().lower()]


def test_a_drift_verdict_change_is_one_log_line(fake_registry, caplog):
    from dann_serve.serving.live_monitor import LiveMonitor

    caplog.set_level(logging.INFO, logger="dann_serve.serving")
    monitor = LiveMonitor(fake_registry, capacity=500)
    for seed in range(3):  # in-distribution: reviewed three times, never a line
        feed(monitor, IN_DISTRIBUTION.draw(200, seed=310 + seed)[0])
        monitor.review()
    assert verdict_lines(caplog) == []
    for seed in range(3):  # the shift shows, and stays: one line
        feed(monitor, SHIFTED["confidently wrong"].draw(250, seed=320 + seed)[0])
        monitor.review()
    [line] = verdict_lines(caplog)
    assert line.startswith("monitor: m version 1 is SHIFTED from its reference")
    assert monitor.version_json("m", 1)["drift"]["shifted"] is True
    for seed in range(3):  # back to the reference: one line more
        feed(monitor, IN_DISTRIBUTION.draw(250, seed=330 + seed)[0])
        monitor.review()
    lines = verdict_lines(caplog)
    assert len(lines) == 2 and lines[1].startswith("monitor: m version 1 is no longer shifted")


def test_versions_that_go_or_are_replaced_are_forgotten(fake_registry):
    from dann_serve.serving.live_monitor import LiveMonitor

    monitor = LiveMonitor(fake_registry, capacity=100)
    feed(monitor, IN_DISTRIBUTION.draw(60, seed=340)[0])
    assert monitor.version_json("m", 1)["images"] == 60
    fake_registry.versions[("m", 1)].identity = 1  # exported again under the same number
    monitor.review()
    assert monitor.version_json("m", 1)["images"] == 0
    feed(monitor, IN_DISTRIBUTION.draw(10, seed=341)[0])
    del fake_registry.versions[("m", 1)]  # unloaded
    monitor.review()
    assert monitor.model_json("m") == {"model": "m", "versions": []}
    feed(monitor, IN_DISTRIBUTION.draw(10, seed=342)[0])  # late answers of a gone version
    assert monitor._tracked == {}
