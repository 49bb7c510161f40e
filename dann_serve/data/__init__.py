"""Data: digit images from named data sets or the user's folders, as uint8 ``[N, 32, 32, 3]``.

Owns the named data sets (``catalog``; one module per file format: ``mnist``
IDX/``.npz``, ``matlab`` for ``svhn``/``syn``, ``mnistm`` PNG folders, ``usps`` HDF5;
``fonts`` and ``digits`` need no files; ``tight`` cuts ``mnist`` and ``usps`` tight
to the ink, black on white; ``texture`` blends them onto colour photographs, as MNIST-M
is made; ``download`` for ``--download``), the user's
own folders of images (``folders``, their decoded pixels kept between runs by
``decode_cache``, as ``fonts`` keeps its rendered ones, both in ``cache_files``), the
``tf.data`` streams the training reads (``pipeline``) and sample PNGs for trying a
served model (``samples``). Every image goes through :mod:`dann_client.preprocessing`,
the one preprocessing step, so the rest of the project never needs to know where a
domain came from.

May import: :mod:`dann_client.preprocessing` (with the transparency rule of
``background`` and the framing rule of ``framing`` it applies, and the client's
``contract`` and ``errors`` it speaks in), the top-level ``config``, ``files`` and
``runtime``, and the scientific stack. Nothing of model, training, export or serving.
"""

from dann_serve.data.catalog import (
    LOADERS,
    canonical,
    is_folder,
    load,
    load_domain,
    load_split,
    load_test_split,
    names,
)
from dann_serve.data.domain import UNKNOWN_LABEL, DatasetError, Domain, Split, is_colour

__all__ = [
    "LOADERS",
    "UNKNOWN_LABEL",
    "DatasetError",
    "Domain",
    "Split",
    "canonical",
    "is_colour",
    "is_folder",
    "load",
    "load_domain",
    "load_split",
    "load_test_split",
    "names",
]
