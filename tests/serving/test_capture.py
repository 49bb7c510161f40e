"""Capture keeps a bounded random sample of served images as owner-only files, written
whole or not at all, off the request path; a folder that cannot be written costs a
counter and one log line, never a request; and the folder reads back as a target."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.captured import captured_files, off_centre_digits, random_pixels, wait_for


def _served(images, signature: str = "predict_label", model: str = "dann", version: int = 1):
    from dann_serve.serving.observers import Served

    probabilities = np.full((len(images), 10), 0.1, np.float32)
    return Served(model, version, signature, {"images": images}, {"probabilities": probabilities})


def _capture(folder: Path, rate: float = 1.0, max_images: int = 1000, seed: int = 0):
    from dann_serve.serving.capture import Capture, CaptureOptions

    return Capture(CaptureOptions(folder, rate, max_images, seed))


def _run(capture, *served) -> None:
    """Show ``served`` to a started capture and wait until it has written them."""
    capture.start()
    for one in served:
        capture.observe(one)
    capture.stop(timeout=60)


def _metric(name: str, **labels: str) -> float:
    from dann_serve.serving.monitoring import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def _encoded(kind: str, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(random_pixels(1, seed)[0]).save(buffer, kind)
    return buffer.getvalue()


def test_images_are_kept_at_the_rate_asked(tmp_path):
    # 40 requests of 100 images at 0.2: 800 expected, binomial sd 12.6; +-4 sd.
    capture = _capture(tmp_path, rate=0.2, max_images=10_000, seed=1)
    _run(capture, *(_served(random_pixels(100, seed)) for seed in range(40)))
    assert 750 <= len(captured_files(tmp_path)) <= 850


def test_each_version_keeps_at_most_its_bound_across_restarts(tmp_path):
    _run(_capture(tmp_path, max_images=7), _served(random_pixels(20)))
    assert len(captured_files(tmp_path / "dann" / "1")) == 7
    # A restarted server counts what is there and keeps no more; another version has
    # room of its own.
    _run(
        _capture(tmp_path, max_images=7),
        _served(random_pixels(5)),
        _served(random_pixels(3), version=2),
    )
    assert len(captured_files(tmp_path / "dann" / "1")) == 7
    assert len(captured_files(tmp_path / "dann" / "2")) == 3


def test_each_version_folder_names_the_version_that_answered_its_images(tmp_path, monkeypatch):
    """``adapt`` records it as its run's parent version; a folder reader skips it."""
    from dann_serve.config import CAPTURE_MANIFEST
    from dann_serve.data.folders import read_folder

    monkeypatch.setenv("DANN_CACHE_DIR", str(tmp_path / "cache"))
    captured = tmp_path / "captured"
    _run(
        _capture(captured),
        _served(random_pixels(2)),
        _served(random_pixels(3), model="m", version=4),
    )
    for model, version, images in (("dann", 1, 2), ("m", 4, 3)):
        folder = captured / model / str(version)
        manifest = json.loads((folder / CAPTURE_MANIFEST).read_text())
        assert manifest == {"model": model, "version": version}
        assert len(read_folder(folder).files) == images


def test_encoded_files_are_kept_byte_for_byte_named_by_their_format(tmp_path):
    sent = {kind: _encoded(kind) for kind in ("PNG", "JPEG", "GIF", "BMP")}
    files = np.array(list(sent.values()), dtype=object)
    _run(_capture(tmp_path), _served(files, "predict_image"))
    kept = {path.suffix: path.read_bytes() for path in captured_files(tmp_path / "dann" / "1")}
    extensions = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp"}
    assert kept == {extensions[kind]: data for kind, data in sent.items()}


def test_only_the_label_signatures_are_captured(tmp_path):
    images = random_pixels(2).astype(np.float32) / 255
    served = [
        _served(images, signature)
        for signature in ("predict_label", "serving_default", "classify_domain")
    ]
    _run(_capture(tmp_path), *served)
    assert len(captured_files(tmp_path)) == 4  # classify_domain's two images are not kept again


def test_captured_pixels_read_back_as_the_same_model_inputs(tmp_path, monkeypatch):
    from dann_serve.data.folders import load_folder

    monkeypatch.setenv("DANN_CACHE_DIR", str(tmp_path / "cache"))
    pixels = np.concatenate([off_centre_digits(4), random_pixels(4)])
    as_float = pixels.astype(np.float32) / np.float32(255)
    captured = tmp_path / "captured"
    _run(_capture(captured), _served(as_float), _served(pixels, "predict_label_uint8"))
    version = captured / "dann" / "1"
    for path in captured_files(version):
        with Image.open(path) as image:
            assert (image.format, image.size, image.mode) == ("PNG", (32, 32), "RGB")
    target = load_folder(version, role="target")
    assert not target.train.labelled and target.train.images.shape == (16, 32, 32, 3)
    expected = np.concatenate([pixels, pixels])
    assert sorted(map(bytes, target.train.images)) == sorted(map(bytes, expected))


def test_files_and_folders_are_owner_only_whatever_the_umask(tmp_path):
    from dann_serve.serving.capture import prepare_folder

    previous = os.umask(0)
    try:
        prepare_folder(tmp_path / "capture")
        _run(_capture(tmp_path / "capture"), _served(random_pixels(3)))
    finally:
        os.umask(previous)
    for path in [tmp_path / "capture", *(tmp_path / "capture").rglob("*")]:
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_an_unwritable_folder_is_counted_and_logged_once_then_retried(tmp_path, caplog):
    caplog.set_level(logging.INFO, "dann_serve.serving")
    (tmp_path / "dann").write_text("a file where the model's folder goes")
    before = _metric("dann_serve_capture_errors_total", reason="unwritable")
    capture = _capture(tmp_path).start()
    for _ in range(3):
        capture.observe(_served(random_pixels(2)))
    wait_for(lambda: _metric("dann_serve_capture_errors_total", reason="unwritable") >= before + 6)
    warnings = [r for r in caplog.records if "cannot write images" in r.getMessage()]
    assert len(warnings) == 1 and "unwritable" in warnings[0].getMessage()
    (tmp_path / "dann").unlink()  # fixed: capture goes on without a restart
    capture.observe(_served(random_pixels(2)))
    capture.stop(timeout=60)
    assert len(captured_files(tmp_path / "dann" / "1")) == 2
    assert any("writing under" in r.getMessage() for r in caplog.records)


def test_a_removed_folder_is_made_again_and_a_model_name_never_leaves_it(tmp_path):
    import shutil

    folder = tmp_path / "capture"
    capture = _capture(folder).start()
    capture.observe(_served(random_pixels(2), model="../outside"))
    capture.observe(_served(random_pixels(2)))
    wait_for(lambda: len(captured_files(folder, suffix=".png")) == 2)  # both renamed into place
    shutil.rmtree(folder)  # an operator empties the volume under a running server
    capture.observe(_served(random_pixels(3)))
    capture.observe(_served(random_pixels(3)))
    capture.stop(timeout=60)
    assert 3 <= len(captured_files(folder / "dann" / "1")) <= 6  # the first write may find it gone
    assert sorted(path.name for path in tmp_path.iterdir()) == ["capture"]


def test_a_full_disk_leaves_no_file_and_is_counted_and_logged_once(tmp_path, caplog, monkeypatch):
    real_write = os.write

    def disk_fills(descriptor, data):  # some bytes land, then the disk is full
        if len(data) > 10:
            real_write(descriptor, bytes(data[:10]))
            return 10
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    before = _metric("dann_serve_capture_errors_total", reason="disk_full")
    monkeypatch.setattr(os, "write", disk_fills)
    _run(_capture(tmp_path), *(_served(random_pixels(2)) for _ in range(5)))
    monkeypatch.undo()
    assert _metric("dann_serve_capture_errors_total", reason="disk_full") == before + 10
    assert [path.name for path in captured_files(tmp_path)] == []  # nor any temporary file
    assert sum("disk_full" in r.getMessage() for r in caplog.records) == 1


def test_a_full_queue_drops_and_counts_without_waiting(tmp_path, monkeypatch):
    import dann_serve.serving.capture as capture_module

    monkeypatch.setattr(capture_module, "MAX_PENDING_BYTES", 10 * 32 * 32 * 3)
    capture = _capture(tmp_path)  # its writer not started: nothing leaves the queue
    before = _metric("dann_serve_capture_dropped_total")
    started = time.perf_counter()
    for _ in range(20):
        capture.observe(_served(random_pixels(4)))
    assert time.perf_counter() - started < 1.0
    assert _metric("dann_serve_capture_dropped_total") == before + 80 - 8  # 2 batches fit


def test_the_writer_keeps_to_its_share_of_a_core(tmp_path, monkeypatch):
    import dann_serve.serving.capture as capture_module

    monkeypatch.setattr(capture_module, "WRITER_CPU_SHARE", 0.02)
    monkeypatch.setattr(capture_module, "WRITER_BURST_SECONDS", 0.001)
    capture = _capture(tmp_path)
    for seed in range(10):
        capture.observe(_served(random_pixels(30, seed)))  # queued before the writer starts
    started, cpu = time.perf_counter(), time.process_time()
    _run(capture)
    elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    assert len(captured_files(tmp_path)) == 300
    # The test's own thread only waits: the CPU used is the writer's.
    assert used > 0.01 and elapsed >= 0.8 * (used - 0.001) / 0.02


@pytest.fixture()
def pauses(monkeypatch) -> list[float]:
    """The writer's waits, recorded instead of slept: the capture module sees a clock
    whose ``sleep`` only notes its argument (no other thread's sleep is caught)."""
    import types

    import dann_serve.serving.capture as capture_module

    waits: list[float] = []
    kept = ("monotonic", "thread_time", "strftime", "gmtime")
    clock = types.SimpleNamespace(**{name: getattr(time, name) for name in kept})
    clock.sleep = waits.append
    monkeypatch.setattr(capture_module, "time", clock)
    return waits


def _burn(cpu_seconds: float) -> None:
    started = time.thread_time()
    while time.thread_time() - started < cpu_seconds:
        pass


def test_the_writer_is_charged_for_writing_not_for_waiting(pauses):
    from dann_serve.serving.capture import _CpuBudget

    budget = _CpuBudget(share=0.05, burst=0.05)
    _burn(0.2)  # polling an empty queue, folders rechecked
    budget.begin()
    budget.spend()  # an image written in no time
    assert pauses == []
    _burn(0.2)  # an image that cost 0.2 CPU-s to write
    budget.spend()
    assert len(pauses) == 1 and pauses[0] == pytest.approx(0.15 / 0.05, rel=0.2)


def test_a_writer_is_not_charged_for_the_cpu_its_wait_for_work_used(tmp_path, monkeypatch, pauses):
    from dann_serve.serving.capture import _Pending

    waiting = _Pending.get

    def costly_wait(self, timeout):  # as if idle polling and folder rechecks cost 0.2 CPU-s
        _burn(0.2)
        return waiting(self, timeout)

    monkeypatch.setattr(_Pending, "get", costly_wait)
    capture = _capture(tmp_path)
    capture.observe(_served(random_pixels(1)))
    _run(capture)
    assert len(captured_files(tmp_path)) == 1
    assert all(wait < 1.0 for wait in pauses), pauses  # charged 0.2 CPU-s: a 3 s pause


def test_a_full_folder_emptied_takes_images_again_without_a_restart(tmp_path, monkeypatch, caplog):
    import dann_serve.serving.capture as capture_module

    caplog.set_level(logging.INFO, "dann_serve.serving")
    monkeypatch.setattr(capture_module, "RECOUNT_SECONDS", 0.05)
    capture = _capture(tmp_path, max_images=2).start()
    capture.observe(_served(random_pixels(3)))
    wait_for(lambda: any("no more are kept" in r.getMessage() for r in caplog.records))
    for path in captured_files(tmp_path):
        path.unlink()  # an operator moves the captured images away to adapt on them
    wait_for(lambda: any("has room again" in r.getMessage() for r in caplog.records))
    time.sleep(2 * capture_module.RECOUNT_SECONDS)  # a recount between the unlinks saw 1
    capture.observe(_served(random_pixels(3, seed=1)))
    capture.stop(timeout=60)
    assert len(captured_files(tmp_path / "dann" / "1")) == 2


def test_a_reader_never_sees_part_of_a_file(tmp_path, monkeypatch):
    real_write = os.write

    def slowly(descriptor, data):  # a slow disk: each file arrives in many pieces
        time.sleep(0.0005)
        return real_write(descriptor, bytes(data[:4096]))

    monkeypatch.setattr(os, "write", slowly)
    size = 200_000
    big = np.array([b"\x89PNG\r\n\x1a\n" + bytes([i]) * (size - 8) for i in range(12)], object)
    seen, done = [], threading.Event()

    def read_folder() -> None:
        while not done.is_set():
            for path in captured_files(tmp_path):
                if path.suffix != ".tmp":
                    seen.append(len(path.read_bytes()))

    reader = threading.Thread(target=read_folder)
    reader.start()
    _run(_capture(tmp_path), _served(big, "predict_image"))
    done.set()
    reader.join()
    assert seen and set(seen) == {size}
    assert len(captured_files(tmp_path)) == 12  # no temporary file left behind


def test_a_capture_folder_that_cannot_be_made_is_one_clear_error(tmp_path):
    from dann_serve.serving.capture import prepare_folder

    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match=r"^--capture-dir .*/file/capture: cannot create it: "):
        prepare_folder(tmp_path / "file" / "capture")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--capture-dir", "x", "--capture-rate", "0"], "--capture-rate"),
        (["--capture-dir", "x", "--capture-rate", "1.5"], "--capture-rate"),
        (["--capture-dir", "x", "--capture-max-images", "0"], "--capture-max-images"),
        (["--capture-rate", "0.5"], "need --capture-dir"),
    ],
)
def test_capture_options_out_of_range_are_usage_errors(arguments, message):
    from click.testing import CliRunner

    from dann_serve.cli.serve import serve

    result = CliRunner().invoke(serve, arguments)
    assert result.exit_code == 2 and message in result.output, result.output
