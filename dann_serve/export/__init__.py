"""Export: a run directory in, ``models/<name>/<version>/`` out, as TensorFlow Serving reads it.

Owns the serving signatures (a ``tf.Module`` over the trained network), the ONNX twins,
the warm-up records, the parity checks and the atomic publication of a version.

May import: :mod:`dann_serve.training` (to restore a run), :mod:`dann_serve.data`
(images for the parity checks), :mod:`dann_client.contract` (the names a client
relies on), and from :mod:`dann_serve.serving` only its readers (``loader``,
``model_config``), so that a version is checked by the code that will load it.
"""
