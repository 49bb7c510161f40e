"""Copies of an export as an older export would be: without some of its signatures.

The client and the server promise to keep serving exports made before a signature
existed (a model without ``classify_domain``, or without ``predict_image`` and
``predict_label_uint8``, the image and uint8 twins of ``predict_label``). Tests and
benchmarks make such a model from a new export, rather than keeping old files around.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from dann_client.contract import LABEL_TWINS

WARMUP = Path("assets.extra") / "tf_serving_warmup_requests"


def copy_without_signatures(
    version_dir: Path, destination: Path, removed: Iterable[str] = LABEL_TWINS
) -> Path:
    """Copy the version directory ``version_dir`` to ``destination`` with the signatures
    ``removed`` deleted from its ``saved_model.pb`` (by default ``predict_label``'s
    twins: an export from before they existed). Its warm-up records, which ask for every
    signature, are dropped. Returns ``destination``."""
    from tensorflow.core.protobuf import saved_model_pb2

    shutil.copytree(version_dir, destination)
    (destination / WARMUP).unlink(missing_ok=True)
    path = destination / "saved_model.pb"
    saved = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    for graph in saved.meta_graphs:
        for name in removed:
            if name in graph.signature_def:
                del graph.signature_def[name]
    path.write_bytes(saved.SerializeToString())
    return destination
