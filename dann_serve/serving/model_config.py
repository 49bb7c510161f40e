"""``models/models.config``: the model_config_list TensorFlow Serving starts from,
and which folders under a model are its versions.

Paths in it are those inside the serving image (``/models/<name>``); the local
server maps them onto its own ``--model-dir`` by model name.
"""

from __future__ import annotations

from pathlib import Path

from dann_serve.files import write_atomically

CONFIG_FILE = "models.config"  # in the model directory, beside the models' folders
CONTAINER_MODEL_ROOT = "/models"
MAX_VERSION = 2**63 - 1  # versions are int64, as in TensorFlow Serving's ModelSpec


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


def add_model_to_config(path: Path, name: str) -> None:
    """List ``name`` in the config file, keeping every other entry; atomic replace."""
    from google.protobuf import text_format

    config = read_config(path)
    entries = config.model_config_list.config
    if any(entry.name == name for entry in entries):
        return
    entry = entries.add()
    entry.name = name
    entry.base_path = f"{CONTAINER_MODEL_ROOT}/{name}"
    entry.model_platform = "tensorflow"
    write_atomically(path, text_format.MessageToString(config))
