"""Copies of an export with its signatures edited: as an older export would be, without
some of them, or with one under another name.

The client and the server promise to keep serving exports made before a signature
existed (a model without ``classify_domain``, or without ``predict_label``'s twins
``predict_image`` and ``predict_label_uint8``), and to judge a signature by what it
declares rather than by its name. Tests and benchmarks make such models from a new
export, rather than keeping old files around.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from dann_client.contract import TWINS

WARMUP = Path("assets.extra") / "tf_serving_warmup_requests"


def copy_without_signatures(
    version_dir: Path, destination: Path, removed: Iterable[str] = TWINS
) -> Path:
    """Copy the version directory ``version_dir`` to ``destination`` with the signatures
    ``removed`` deleted from its ``saved_model.pb`` (by default ``predict_label``'s
    twins: an export from before they existed). Returns ``destination``."""

    def remove(signature_defs) -> None:
        for name in removed:
            if name in signature_defs:
                del signature_defs[name]

    return _copy_editing_signatures(version_dir, destination, remove)


def copy_renaming_signatures(
    version_dir: Path, destination: Path, renamed: Mapping[str, str]
) -> Path:
    """Copy the version directory ``version_dir`` to ``destination`` with each signature
    of ``renamed`` (old name to new) served under its new name only. Returns
    ``destination``."""

    def rename(signature_defs) -> None:
        for old, new in renamed.items():
            signature_defs[new].CopyFrom(signature_defs[old])
            del signature_defs[old]

    return _copy_editing_signatures(version_dir, destination, rename)


def _copy_editing_signatures(
    version_dir: Path, destination: Path, edit: Callable[[object], None]
) -> Path:
    """The copy, with ``edit`` applied to each MetaGraph's SignatureDef map. Its warm-up
    records, which ask for the signatures by their names, are dropped."""
    from tensorflow.core.protobuf import saved_model_pb2

    shutil.copytree(version_dir, destination)
    (destination / WARMUP).unlink(missing_ok=True)
    path = destination / "saved_model.pb"
    saved = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    for graph in saved.meta_graphs:
        edit(graph.signature_def)
    path.write_bytes(saved.SerializeToString())
    return destination
