"""The two distributions and the lock: who ships what, where versions come from.

- ``dann-client`` (client/) is the only distribution with the ``dann_client`` package and
  the ``dann-client`` command; the root ``dann-serve`` requires it and ships neither.
- Each distribution's version is written once, in its pyproject.toml; ``__version__``
  and ``dann-client --version`` read it from the installed metadata.
- constraints.txt (``make lock``) pins every third-party distribution of both, with all
  their extras, and the environment ``make`` built agrees with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import dann_client
import dann_serve
from dann_client.cli import cli

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "constraints.txt"
OURS = {"dann-serve", "dann-client"}
HEAVY = {"tensorflow", "keras", "numpy", "PIL", "grpc", "google", "onnxruntime"}


def _project(pyproject: Path) -> dict:
    return tomllib.loads(pyproject.read_text())["project"]


ROOT_PROJECT = _project(ROOT / "pyproject.toml")
CLIENT_PROJECT = _project(ROOT / "client" / "pyproject.toml")


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )


# --- who ships what ---------------------------------------------------------------


def test_root_distribution_requires_the_client_unconditionally():
    requirements = [Requirement(line) for line in metadata.requires("dann-serve") or []]
    client = [r for r in requirements if canonicalize_name(r.name) == "dann-client"]
    assert client, "dann-serve's metadata does not require dann-client"
    assert all(r.marker is None and r.url is None for r in client), client


def _installed(name: str) -> metadata.Distribution:
    """``name`` as pip installed it: its .dist-info in site-packages, not an .egg-info
    of the checkout (on sys.path in the tests), whose file list can be older."""
    (found,) = metadata.distributions(name=name, path=[sysconfig.get_paths()["purelib"]])
    return found


def test_installed_root_has_no_client_files_nor_command():
    root = _installed("dann-serve")
    assert not [str(path) for path in root.files or [] if "dann_client" in str(path)]
    assert "dann-client" not in root.entry_points.select(group="console_scripts").names

    client = _installed("dann-client")
    (script,) = client.entry_points.select(group="console_scripts", name="dann-client")
    assert script.value == "dann_client.cli:main"
    assert metadata.packages_distributions()["dann_client"] == ["dann-client"]
    assert Path(dann_client.__file__).resolve().parent == ROOT / "client" / "dann_client"


def test_root_wheel_ships_every_dann_serve_package_and_nothing_else(tmp_path):
    """Build the root's wheel from a copy of the checkout, client/ and harness/ included."""
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("dann_serve", "client", "harness", "tests"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    (source / "dann_serve" / "not_a_package").mkdir()  # a stray folder, no __init__.py
    (source / "dann_serve" / "not_a_package" / "stray.py").write_text("")
    (source / "dann_serve" / "added").mkdir()  # a subpackage added later is found
    (source / "dann_serve" / "added" / "__init__.py").write_text("")
    built = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta; "
            "print(build_meta.build_wheel(sys.argv[1]))",
            str(tmp_path),
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = tmp_path / built.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        requires = [
            Requirement(line.split(":", 1)[1].strip())
            for line in archive.read(f"{dist_info}/METADATA").decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]

    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"dann_serve", dist_info}
    packages = {
        str(init.parent.relative_to(source))
        for init in (source / "dann_serve").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert "dann_serve/added" in packages
    shipped = {name.rsplit("/", 1)[0] for name in names if name.endswith("/__init__.py")}
    assert shipped == packages
    assert not [name for name in names if "not_a_package" in name]
    page = {f"dann_serve/serving/page/{name}" for name in ("index.html", "page.js", "page.css")}
    assert page <= set(names), "the web page's files are package data"
    assert "dann-client" not in entry_points and "dann-serve" in entry_points
    assert any(canonicalize_name(r.name) == "dann-client" and not r.marker for r in requires)


# --- versions come from the metadata ------------------------------------------------


def test_versions_are_the_pyproject_ones_read_from_metadata():
    assert metadata.version("dann-serve") == ROOT_PROJECT["version"], "stale install: run make"
    assert metadata.version("dann-client") == CLIENT_PROJECT["version"], "stale install: run make"
    assert dann_serve.__version__ == metadata.version("dann-serve")
    assert dann_client.__version__ == metadata.version("dann-client")
    assert "version" not in ROOT_PROJECT.get("dynamic", [])


# Whatever the metadata says is what the packages and the command say: a version written
# into the code instead (even the same number) fails here.
_FAKE_METADATA = (
    "import importlib.metadata as m; "
    "m.version = {'dann-serve': '7.7.1', 'dann-client': '7.7.2'}.__getitem__; "
)


def test_dunder_versions_follow_the_metadata():
    shown = _python(
        _FAKE_METADATA + "import dann_serve, dann_client; "
        "print(dann_serve.__version__, dann_client.__version__)"
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["7.7.1", "7.7.2"]


def test_dann_client_version_option_follows_the_metadata():
    shown = _python(_FAKE_METADATA + "from dann_client.cli import main; main(['--version'])")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("dann-client") and shown.stdout.split()[-1] == "7.7.2"


def test_dann_client_command_prints_its_version():
    script = Path(sys.executable).with_name("dann-client")
    shown = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split()[0].rstrip(",") == "dann-client"
    assert shown.stdout.split()[-1] == metadata.version("dann-client")


@pytest.mark.parametrize("option", ["--help", "--version"])
def test_help_and_version_load_no_heavy_module(option):
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    code = f"from dann_client.cli import main; main([{option!r}])"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    assert not HEAVY & {name.split(".")[0] for name in imported}


def test_version_after_a_command_is_still_the_model_version():
    both = CliRunner().invoke(cli, ["predict", "x.png", "--version", "2", "--label", "stable"])
    assert both.exit_code == 2 and "give --version or --label, not both" in both.output
    zero = CliRunner().invoke(cli, ["status", "--version", "0"])
    assert zero.exit_code == 2 and "--version" in zero.output
    assert "Model version" in CliRunner().invoke(cli, ["status", "--help"]).output


# --- the lock -----------------------------------------------------------------------


def _lock_pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==" and not requirement.url, line
        pins[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pins


def _declared(project: dict) -> list[Requirement]:
    lines = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        lines += extra
    return [Requirement(line) for line in lines]


def test_lock_pins_third_party_distributions_only():
    pins = _lock_pins()
    assert not OURS & set(pins), "our own distributions are installed from the checkout"
    assert pins["tensorflow"].release[:2] == (2, 21)


def test_lock_covers_every_declared_requirement():
    """Fails after a dependency changed in a pyproject.toml without `make lock`."""
    pins = _lock_pins()
    environment = {**default_environment(), "python_version": "3.11", "sys_platform": "linux"}
    for requirement in _declared(ROOT_PROJECT) + _declared(CLIENT_PROJECT):
        name = canonicalize_name(requirement.name)
        if name in OURS or not (
            requirement.marker is None or requirement.marker.evaluate(environment)
        ):
            continue
        assert name in pins, f"{name} is not in {LOCK.name}: run make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {name}=={pins[name]}, outside {requirement}: run make lock"
        )


def _installed_closure(name: str, extras: set[str]) -> dict[str, str]:
    """{distribution: installed version} of ``name[extras]`` and all it requires."""
    found: dict[str, str] = {}
    done: set[tuple[str, str]] = set()
    todo = [(name, extra) for extra in {"", *extras}]
    while todo:
        current, extra = todo.pop()
        key = canonicalize_name(current)
        if (key, extra) in done:
            continue
        done.add((key, extra))
        distribution = metadata.distribution(current)
        found[key] = distribution.version
        for line in distribution.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                todo += [(requirement.name, e) for e in {"", *requirement.extras}]
    return found


def test_installed_environment_is_the_locked_one():
    """What `make` installed (dev extra, and bench when installed) is pinned, as pinned."""
    pins = _lock_pins()
    extras = {"dev"}
    try:
        installed_bench = _installed_closure("dann-serve", {"bench"})
    except metadata.PackageNotFoundError:  # `make bench` not run here: check without it
        installed_bench = {}
    if installed_bench:
        extras.add("bench")
    installed = _installed_closure("dann-serve", extras) | _installed_closure("dann-client", set())
    unpinned = set(installed) - set(pins) - OURS
    assert not unpinned, f"installed but not in {LOCK.name}: {sorted(unpinned)}"
    differ = {
        name: (version, str(pins[name]))
        for name, version in installed.items()
        if name not in OURS and Version(version) != pins[name]
    }
    assert not differ, f"installed versions differ from {LOCK.name} (run make): {differ}"
