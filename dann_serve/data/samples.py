"""Write a few images of a data set as PNG files, to try a served model by hand.

File names carry the true label (``digits-test-0007-label3.png``), so a person
reading the client's output can check every answer at a glance.
"""

from __future__ import annotations

from pathlib import Path

from dann_client.preprocessing import save_image
from dann_serve import data


def write_samples(
    dataset: str, out: Path, count: int = 10, split: str = "test", data_dir: str | None = None
) -> list[Path]:
    """The first ``count`` images of ``dataset``'s ``split`` as 32x32 PNG files in ``out``."""
    chosen = data.load(dataset, data_dir).split(split)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(min(count, len(chosen))):
        path = out / f"{dataset}-{split}-{index:04d}-label{chosen.labels[index]}.png"
        save_image(chosen.images[index], path)
        paths.append(path)
    return paths
