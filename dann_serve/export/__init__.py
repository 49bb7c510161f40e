"""Export: a run directory in, ``models/<name>/<version>/`` out, as TensorFlow Serving reads it.

One module per step: the serving signatures, a ``tf.Module`` over the trained network
(``signatures``), with ``predict_image``'s in-graph decoding of image files
(``image_input``); the warm-up records (``warmup``); the live monitor's reference
(``monitor_reference``: the model's outputs on its target sample, ATC's threshold on
held-out source images); the ONNX twins and their parity
(``onnx``); the parity checks, among them loading the version the way TensorFlow
Serving does (``checks``); and the atomic publication of a version (``publish``:
version numbers, staging, the exchange with an old version, :func:`export_run`).

May import: :mod:`dann_serve.training` and :mod:`dann_serve.model` (to restore a run),
:mod:`dann_serve.data` (images for the parity checks and the reference),
:mod:`dann_serve.drift` (the reference's statistics and file format), the top-level ``config``,
``files`` and ``runtime``, :mod:`dann_client.contract` (the names a client relies on)
and :mod:`dann_client.preprocessing`, and from :mod:`dann_serve.serving` only its
readers (``loader``, ``model_config``), so that a version is checked by the code that
will load it.
"""

from dann_serve.export.checks import ExportError
from dann_serve.export.publish import ExportResult, export_run

__all__ = ["ExportError", "ExportResult", "export_run"]
