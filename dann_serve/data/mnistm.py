"""``mnistm``: MNIST-M (Ganin et al.), MNIST digits blended over BSDS500 photo patches.

The layout is the one the original ``mnist_m.tar.gz`` unpacks to, placed in
``<data-dir>/mnistm/``::

    mnistm/mnist_m_train/00000000.png ...      mnistm/mnist_m_train_labels.txt
    mnistm/mnist_m_test/00000000.png ...       mnistm/mnist_m_test_labels.txt

Each label file has one ``<file name> <label>`` line per image (blank lines are
skipped); the images are read in that order. They are image files, so they go
through the client's own image reader (:func:`dann_client.preprocessing.load_images`),
the same code that prepares a user's PNG for the served model, told that the data set
keeps its own layout: MNIST-M's 32x32 RGB passes through unchanged, never checked
against the framing rule (its digits are MNIST's, laid out as MNIST lays them; a
photograph patch that happens to look plain must not move one), and any other size is
framed or fitted as the client would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dann_client.preprocessing import load_images
from dann_serve.data.datadir import corrupt, dataset_dir, missing
from dann_serve.data.domain import Domain, Split

NAME = "mnistm"
SPLITS = {"train": "mnist_m_train", "test": "mnist_m_test"}


def read_label_list(path: Path) -> tuple[list[str], np.ndarray]:
    """File names and labels of a ``<file name> <label>`` list, each line checked."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise corrupt(NAME, path, f"cannot read the label list ({error})") from None
    names, labels = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise corrupt(
                NAME, path, f"line {number}: expected '<file name> <label>', got {line.strip()!r}"
            )
        label = int(fields[1])
        if not 0 <= label <= 9:
            raise corrupt(NAME, path, f"line {number}: label {label} is out of range 0-9")
        names.append(fields[0])
        labels.append(label)
    if not names:
        raise corrupt(NAME, path, "the label list is empty")
    return names, np.array(labels, dtype=np.int64)


def read_png_split(folder: Path, label_list: Path) -> Split:
    """The images a label list names, from ``folder``, with their labels."""
    names, labels = read_label_list(label_list)
    images, failures = load_images((folder / name for name in names), keep_layout=True)
    if failures:
        path, reason = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise corrupt(NAME, Path(path), f"listed in {label_list.name} but {reason}{more}")
    return Split(images, labels)


def load_mnistm(data_dir: Path | None) -> Domain:
    """MNIST-M's train and test PNG folders and label lists from ``<data-dir>/mnistm/``."""
    root = dataset_dir(NAME, data_dir)
    expected = [f"{stem}/ and {stem}_labels.txt" for stem in SPLITS.values()]
    for stem in SPLITS.values():
        if not (root / stem).is_dir() or not (root / f"{stem}_labels.txt").is_file():
            raise missing(NAME, root, [" and ".join(expected)])
    train, test = (
        read_png_split(root / stem, root / f"{stem}_labels.txt") for stem in SPLITS.values()
    )
    return Domain(NAME, train=train, test=test)
