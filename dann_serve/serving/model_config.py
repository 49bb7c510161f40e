"""``models/models.config``: the model_config_list TensorFlow Serving starts from,
which folders under a model are its versions, which of them its version policy serves,
and the version labels (``stable``, ``canary``) that name them.

Paths in it are those inside the serving image (``/models/<name>``); the local
server maps them onto its own ``--model-dir`` by model name.

The file is read by the servers and written by two commands: ``export`` lists a new
model in it, ``promote`` moves a label. Both rewrite it whole in protobuf's text
format (the comments it opens with are kept, those among its fields are not), through
one atomic, durable replace: a server polling it reads the old file or the new one,
never half of either.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dann_serve.files import write_atomically

CONFIG_FILE = "models.config"  # in the model directory, beside the models' folders
CONTAINER_MODEL_ROOT = "/models"
MAX_VERSION = 2**63 - 1  # versions are int64, as in TensorFlow Serving's ModelSpec
# What ``promote`` accepts as a label: TensorFlow Serving takes any string, but a REST
# client names it in a URL (``/v1/models/<name>/labels/<label>``), where ``/``, ``:``,
# ``%`` or a space would need escaping that servers do not undo.
LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class ConfigError(Exception):
    """The model config file cannot be used as it is: a server keeps serving what it
    served, and ``promote`` changes nothing."""


def version_number(name: str) -> int | None:
    """The version a folder under a model stands for, or None if it stands for none.

    The one rule polling, status and export share: ASCII decimal digits without a
    leading zero, 1 to 2**63-1. ``str.isdigit`` also takes ``²`` and ``٣``, which
    ``int`` refuses or maps onto another folder's number, and a number past int64
    cannot be put in a ModelSpec or a status answer; TensorFlow Serving skips such
    folders too. Without leading zeros each version has exactly one folder.
    """
    if not (name.isascii() and name.isdigit()) or len(name) > len(str(MAX_VERSION)):
        return None
    value = int(name)
    return value if 1 <= value <= MAX_VERSION and str(value) == name else None


def versions_on_disk(base: Path, strays: set[Path] | None = None) -> dict[int, Path]:
    """Version-named subdirectories (``version_number``) holding a saved_model.pb.

    Other folders are ignored; those not hidden (``.staging-*`` and ``.retired-*`` are
    the export's own) are added to ``strays``, for the poller to name them once.
    """
    if not base.is_dir():
        return {}
    found = {}
    for entry in base.iterdir():
        version = version_number(entry.name)
        if version is None:
            if strays is not None and not entry.name.startswith(".") and entry.is_dir():
                strays.add(entry)
        elif (entry / "saved_model.pb").is_file():
            found[version] = entry
    return found


def read_config(path: Path):
    """The parsed ModelServerConfig at ``path`` (empty if the file does not exist)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    if path.exists():
        text_format.Parse(path.read_text(), config)
    return config


def fingerprint(path: Path) -> int:
    """A fingerprint of every file's name, size and mtime in a version directory.

    It changes when the version is replaced (``export --force``) and when a copy made
    by hand, file by file, completes, so a load that failed on a half-copied directory
    is tried again once the copy is whole, and not every second before that.
    """
    entries = []
    for file in sorted(path.rglob("*")):
        stat = file.stat()
        entries.append((str(file.relative_to(path)), stat.st_size, stat.st_mtime_ns))
    return hash(tuple(entries))


def write_config(path: Path, config) -> None:
    """Replace the config file with ``config`` in one atomic, durable step, keeping the
    comment lines the file opens with (protobuf's text format drops comments, and a
    config's explanation is usually at its top, as in models/canary.config)."""
    from google.protobuf import text_format

    header = []
    if path.is_file():
        for line in path.read_text().splitlines(keepends=True):
            if line.strip() and not line.lstrip().startswith("#"):
                break
            header.append(line)
    text = "".join(header) + text_format.MessageToString(config)
    write_atomically(path, text, durable=True)


@contextmanager
def editing(path: Path) -> Iterator[None]:
    """Hold the config file's folder locked while the block reads and rewrites the file.

    Exports and promotes then edit it one at a time, so none reads it while another
    rewrites it and drops the other's change. The lock is ``flock`` on the folder
    itself: no lock file is left beside the models, and a killed process lets go.
    """
    import fcntl

    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # which releases the lock


def add_model_to_config(path: Path, name: str) -> None:
    """List ``name`` in the config file, keeping every other entry."""
    with editing(path):
        config = read_config(path)
        entries = config.model_config_list.config
        if any(entry.name == name for entry in entries):
            return
        entry = entries.add()
        entry.name = name
        entry.base_path = f"{CONTAINER_MODEL_ROOT}/{name}"
        entry.model_platform = "tensorflow"
        write_config(path, config)


def local_base(base_path: str, model_dir: Path, config_file: Path) -> Path:
    """A config's ``base_path`` on this machine: ``/models/<name>`` (the image's path)
    onto ``model_dir/<name>``, a relative path from the config file's folder."""
    prefix = CONTAINER_MODEL_ROOT + "/"
    if base_path.startswith(prefix):
        return model_dir / base_path[len(prefix) :]
    path = Path(base_path)
    return path if path.is_absolute() else config_file.parent / path


def wanted_versions(policy, on_disk: Collection[int]) -> list[int]:
    """The versions a ModelConfig's ``model_version_policy`` serves out of ``on_disk``,
    newest first, as TF Serving reads it (no policy, or no config: the newest)."""
    versions = sorted(on_disk, reverse=True)
    if policy is None:
        return versions[:1]
    chosen = policy.model_version_policy
    choice = chosen.WhichOneof("policy_choice")
    if choice == "all":
        return versions
    if choice == "specific":
        return [v for v in versions if v in set(chosen.specific.versions)]
    count = chosen.latest.num_versions if choice == "latest" else 0
    return versions[: max(count, 1)]


def refused_label(entry, available: Collection[int]) -> str | None:
    """Why ``entry``'s labels cannot be taken while ``available`` versions are served
    (TensorFlow Serving's words), or None if every label names one of them.

    TensorFlow Serving refuses a config whose label names a version that is not
    available: a request for the label would fail until it loaded. The local server
    checks after loading what the config asks for, before the switch, so a label and
    its new version arrive together.
    """
    for label, version in sorted(entry.version_labels.items()):
        if version not in available:
            return (
                f"Request to assign label to version {version} of model {entry.name}, "
                f"which is not currently available for inference (label {label})"
            )
    return None


@dataclass(frozen=True)
class ModelSource:
    """A model name, the directory holding its versions, and which versions to serve."""

    name: str
    base: Path
    policy: Any = None  # its ModelConfig (TF Serving's message), if the config lists it

    def wanted(self, on_disk: Collection[int]) -> list[int]:
        """The versions the policy asks for, as TF Serving reads model_version_policy."""
        return wanted_versions(self.policy, on_disk)

    @property
    def labels(self) -> dict[str, int]:
        return dict(self.policy.version_labels) if self.policy else {}

    def check_labels(self, available: Collection[int]) -> None:
        """ConfigError if a label names a version not in ``available``."""
        refused = refused_label(self.policy, available) if self.policy else None
        if refused:
            raise ConfigError(refused)


@dataclass(frozen=True)
class Promotion:
    """What ``promote`` changed: ``label`` of model ``name`` from ``previous`` (None:
    a new label) to ``version``, in ``config_file``."""

    config_file: Path
    name: str
    label: str
    version: int
    previous: int | None


def promote(
    model_dir: Path, name: str, version: int, label: str, config_file: Path | None = None
) -> Promotion:
    """Point ``label`` of model ``name`` at ``version`` in the config file, keeping every
    other field; a server polling the file takes it at its next poll, without a restart.

    Refused (ConfigError, nothing written) where the server would refuse the result:
    a version not exported under the model's folder, or one its version policy does
    not serve. A missing config file, or one not listing the model, is refused too
    rather than created: without a config the server serves every model in the tree,
    with one only those listed, so writing one here would silently change what is
    served.
    """
    path = Path(config_file) if config_file else Path(model_dir) / CONFIG_FILE
    if not LABEL_PATTERN.fullmatch(label):
        raise ConfigError(
            f"label {label!r}: use up to 64 letters, digits, '_', '.' or '-', starting "
            "with a letter or digit (REST clients name it in a URL)"
        )
    if not path.is_file():
        raise ConfigError(
            f"{path} does not exist: labels live in a model's entry there (export writes "
            "one; models/canary.config shows one with labels)"
        )
    with editing(path):
        entry, config = _model_entry(path, name)
        base = local_base(entry.base_path, Path(model_dir), path)
        exported = sorted(versions_on_disk(base))
        if version not in exported:
            shown = ", ".join(map(str, exported)) or "none"
            raise ConfigError(
                f"{name} version {version} is not exported under {base} ({shown} are)"
            )
        served = wanted_versions(entry, exported)
        if version not in served:
            raise ConfigError(
                f"{name} version {version} is exported but not served: the model_version_policy"
                f" in {path} serves {', '.join(map(str, served))}; add {version} to it (e.g."
                " specific { versions: ... }), as a label only names a served version"
            )
        previous = entry.version_labels.get(label)
        entry.version_labels[label] = version
        write_config(path, config)
    return Promotion(path, name, label, version, previous)


def _model_entry(path: Path, name: str):
    """The ModelConfig of ``name`` in the config file at ``path``, and the whole config."""
    try:
        config = read_config(path)
    except Exception as error:  # text_format raises its own ParseError
        raise ConfigError(f"{path}: {error}") from None
    for entry in config.model_config_list.config:
        if entry.name == name:
            return entry, config
    listed = ", ".join(entry.name for entry in config.model_config_list.config) or "none"
    raise ConfigError(f"{path} does not list model {name!r} (it lists {listed})")
