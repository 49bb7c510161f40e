"""What every benchmark script shares: the machine and versions it ran on, where its
figures go, and the tiny exported model the serving and client benchmarks talk to.

Each script writes ``bench/results/<name>.json`` (or ``--json PATH``) through
:func:`write_result`: ``{"benchmark", "date", "wall_seconds", "command", "machine",
"versions", "figures"}``; ``python -m bench.performance_page`` turns those files into the
tables of ``docs/PERFORMANCE.md``. This module imports nothing heavy, so a script that must not
load TensorFlow (the client start-up benchmark) can use it too.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from dann_serve.files import write_json
from dann_serve.runtime import package_versions

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
# The real digit data beside the checkout (../shared/data: the MNIST test set, USPS).
SHARED_DATA = ROOT.parent / "shared" / "data"
# the packages the figures depend on, recorded with each result
PACKAGES = ("tensorflow", "keras", "onnxruntime", "grpcio", "numpy", "tf2onnx", "adapt", "tf_keras")


# -- the machine and the software --------------------------------------------------------


def cpuinfo(text: str | None = None) -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty off Linux)."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine() -> dict:
    """CPU model, cores, clock, SIMD flags, memory and the load when this was called."""
    info = cpuinfo()
    flags = set(info.get("flags", "").split())
    simd = [
        f
        for f in (
            "sse4_2",
            "avx",
            "avx2",
            "fma",
            "avx512f",
            "avx512_bf16",
            "avx512_vnni",
            "amx_tile",
        )
        if f in flags
    ]
    return {
        "cpu": info.get("model name", platform.processor() or "unknown"),
        "vendor": info.get("vendor_id", ""),
        "cpu_family": info.get("cpu family", ""),
        "cpu_model": info.get("model", ""),
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "mhz": float(info["cpu MHz"]) if "cpu MHz" in info else None,
        "simd": simd,
        "memory_gib": memory_gib(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "system": f"{platform.system()} {platform.release()}",
    }


# -- results ----------------------------------------------------------------------------


class Result:
    """One benchmark's figures on their way to ``bench/results/<name>.json``.

    Created when the script starts (so the wall time and the starting load are the
    script's own); :meth:`write` adds the machine and versions and writes atomically.
    """

    def __init__(self, name: str, path: Path | None = None) -> None:
        self.name = name
        self.path = Path(path) if path else RESULTS / f"{name}.json"
        self.started = time.perf_counter()
        self.load_at_start = [round(x, 2) for x in os.getloadavg()]

    def write(self, figures: dict) -> Path:
        host = machine()
        host["load_average_at_start"] = self.load_at_start
        record = {
            "benchmark": self.name,
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "wall_seconds": round(time.perf_counter() - self.started, 1),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "machine": host,
            "versions": package_versions(PACKAGES),
            "figures": figures,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, record, sort_keys=False)
        print(f"wrote {self.path}", flush=True)
        return self.path


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


# -- CPU time -----------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the CLI runs)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


# -- the model the serving and client benchmarks use --------------------------------------


def tiny_export(workdir: Path, steps: int = 60) -> Path:
    """Train a short run on the embedded pair and export it; returns the model dir.

    The weights do not matter to latency or throughput (the graph is the same), so
    a minute of training is enough; ``make bench`` builds it once for all scripts.
    What a person looks at (``bench.page_screenshot``) takes a few more ``steps``.
    """
    from dann_serve.config import TrainConfig
    from dann_serve.export import export_run
    from dann_serve.training.loop import train_run

    workdir = Path(workdir)
    config = TrainConfig(steps=steps, batch_size=32, eval_every=30)
    train_run(config, workdir / "run", show_progress=False)
    export_run(workdir / "run", workdir / "models", "dann")
    return workdir / "models"


def newest_version(model_dir: Path) -> Path:
    from dann_serve.serving.model_config import versions_on_disk

    found = versions_on_disk(Path(model_dir) / "dann")
    if not found:
        raise SystemExit(f"{model_dir}/dann has no exported version")
    return found[max(found)]


def argument_parser(description: str) -> argparse.ArgumentParser:
    """A script's parser, whose usage line shows the command that runs it,
    ``python -m bench.NAME`` (argparse would show the file's name alone)."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    prog = f"python -m {spec.name}" if spec is not None else None
    return argparse.ArgumentParser(prog=prog, description=description)


def bench_module(name: str) -> list[str]:
    """This interpreter running ``bench/<name>.py`` as ``python -m bench.<name>``.

    Run it with ``cwd=ROOT``: the checkout's packages ``bench`` and ``harness`` are not
    installed, and ``-m`` imports them from the working directory.
    """
    return [sys.executable, "-m", f"bench.{name}"]


def client_command() -> list[str]:
    """``dann-client`` beside this interpreter, else the module run by this interpreter."""
    script = Path(sys.executable).with_name("dann-client")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dann_client"]


if __name__ == "__main__":
    # ``python -m bench._common export DIR``: the tiny model, once, for `make bench`.
    if len(sys.argv) != 3 or sys.argv[1] != "export":
        raise SystemExit("usage: python -m bench._common export WORKDIR")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(newest_version(tiny_export(Path(sys.argv[2]))))
