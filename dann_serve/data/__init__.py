"""Data: digit images from named data sets, as uint8 ``[N, 32, 32, 3]`` splits.

Owns the loaders (one module per file format: ``mnist`` IDX/``.npz``, ``matlab``
for ``svhn``/``syn``, ``mnistm`` PNG folders, ``usps`` HDF5; ``fonts`` and ``digits``
need no files), ``download`` for ``--download``, the ``tf.data`` streams the
training reads (``pipeline``) and sample PNGs for trying a served model
(``samples``). Every loader lays images out through
:func:`dann_client.preprocessing.layout_batch`, the one preprocessing step, so the
rest of the project never needs to know where a domain came from.

May import: :mod:`dann_client.preprocessing`, the top-level ``config``, ``files`` and
``runtime``, and the scientific stack. Nothing of model, training, export or serving.
"""

from dann_serve.data.catalog import LOADERS, load, names
from dann_serve.data.domain import DatasetError, Domain, Split

__all__ = ["LOADERS", "DatasetError", "Domain", "Split", "load", "names"]
