"""How often ``predict_image`` (the file decoded in the graph) gives the label the client's
Pillow path gives.

The client reads each file with ``dann_client.preprocessing`` and sends the pixels
as uint8 (``predict_label_uint8``) or as float32 / 255 (``predict_label``); a
``curl`` user sends the file itself to ``predict_image``. On real MNIST test digits
written as files, this prints the three pairwise label agreements (image vs uint8,
image vs float32, uint8 vs float32) and how far the graph's decoded pixels are from
Pillow's. ``png`` (grey 28x28, how MNIST digits are saved) is the acceptance figure;
the other encodings go through the graph's framing, resize and transparency paths
(the ``tight`` ones are cut to the ink and black on white, as users' crops often are).

    python -m bench.image_agreement [--model-dir models] [--images 1000]
        [--json bench/results/image_agreement.json]

Without --model-dir a tiny model is trained and exported first (about a minute); without
``../shared/data/mnist`` it says so and measures nothing.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from PIL import Image

from bench._common import SHARED_DATA, Result, argument_parser, newest_version, tiny_export
from dann_client.framing import ink_box
from dann_client.preprocessing import image_to_array, to_model_input
from dann_serve.data.mnist import IMAGES_MAGIC, read_idx
from dann_serve.data.tight import tight_crop
from dann_serve.export.image_input import decode_images

MNIST_IMAGES = SHARED_DATA / "mnist"
BATCH = 250
GOAL = 0.995


def _file(image: Image.Image, kind: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def encodings(digits: np.ndarray) -> dict[str, list[bytes]]:
    """MNIST digits (uint8 [N, 28, 28], white on black) as files, several ways."""
    ink = [np.full_like(d, 255) for d in digits]
    return {
        "png": [_file(Image.fromarray(d)) for d in digits],
        "png rgb": [_file(Image.fromarray(np.dstack([d] * 3))) for d in digits],
        "png rgba white ink on transparent": [
            _file(Image.fromarray(np.dstack([w, w, w, d]), "RGBA"))
            for w, d in zip(ink, digits, strict=True)
        ],
        "png rgba black ink on transparent": [
            _file(Image.fromarray(np.dstack([0 * d, 0 * d, 0 * d, d]), "RGBA")) for d in digits
        ],
        "jpeg 64x64 q90": [
            _file(Image.fromarray(d).resize((64, 64)).convert("RGB"), "JPEG", quality=90)
            for d in digits
        ],
        # Framed: cut tight to the ink and black on white, as users' crops often are.
        "png tight black on white": [_file(Image.fromarray(255 - _tight(d))) for d in digits],
        "png tight 16x16 black on white": [_file(Image.fromarray(tight_crop(d))) for d in digits],
        "png wide margin 60x44 rgb": [
            _file(Image.fromarray(np.dstack([np.pad(d, ((20, 12), (6, 10)))] * 3))) for d in digits
        ],
    }


def _tight(digit: np.ndarray) -> np.ndarray:
    """The digit's ink (any pixel above 0) and nothing around it."""
    top, left, bottom, right = ink_box(digit > 0)
    return digit[top:bottom, left:right]


def _labels(function, inputs: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [
            function(images=tf.constant(inputs[i : i + BATCH]))["label"].numpy()
            for i in range(0, len(inputs), BATCH)
        ]
    )


def agreement(saved, files: list[bytes]) -> dict[str, float]:
    """The three pairwise label agreements on ``files`` (shares of the files), and how
    the graph's decoded pixels differ from the client's."""
    pixels = np.stack([image_to_array(Image.open(io.BytesIO(data))) for data in files])
    encoded = np.array(files, dtype=object)
    image = _labels(saved.signatures["predict_image"], encoded)
    uint8 = _labels(saved.signatures["predict_label_uint8"], pixels)
    float32 = _labels(saved.signatures["predict_label"], to_model_input(pixels))
    decoded = decode_images(tf.constant(encoded)).numpy()
    difference = np.abs(decoded.astype(np.int16) - pixels.astype(np.int16))
    return {
        "images": len(files),
        "predict_image vs uint8": float(np.mean(image == uint8)),
        "predict_image vs float32": float(np.mean(image == float32)),
        "uint8 vs float32": float(np.mean(uint8 == float32)),
        "pixels equal": float(np.mean(difference == 0)),
        "largest pixel difference": int(difference.max()),
    }


def main() -> None:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="default: a tiny export")
    parser.add_argument("--images", type=int, default=1000, help="MNIST test digits")
    parser.add_argument("--json", type=Path, default=None, help="where the figures go")
    args = parser.parse_args()
    result = Result("image_agreement", args.json)
    path = MNIST_IMAGES / "t10k-images-idx3-ubyte.gz"
    if not path.is_file():
        print(f"skipped: no MNIST test images at {path}")
        return
    digits = read_idx(path, IMAGES_MAGIC)[: args.images]
    with tempfile.TemporaryDirectory(prefix="image-agreement-") as scratch:
        version_dir = newest_version(args.model_dir or tiny_export(Path(scratch)))
        saved = tf.saved_model.load(str(version_dir))
        figures = {kind: agreement(saved, files) for kind, files in encodings(digits).items()}
    print(f"model {version_dir}, {len(digits)} MNIST test digits")
    for kind, row in figures.items():
        pairs = ", ".join(f"{k} {100 * v:.1f}%" for k, v in row.items() if " vs " in k)
        print(
            f"{kind:<34} {pairs}; pixels equal {100 * row['pixels equal']:.2f}% "
            f"(largest difference {row['largest pixel difference']})"
        )
    worst = min(v for k, v in figures["png"].items() if " vs " in k)
    verdict = "met" if worst >= GOAL else "NOT met"
    print(f"goal >= {100 * GOAL}% on PNG digits: {100 * worst:.1f}% {verdict}")
    result.write({"model": str(version_dir), "goal": GOAL, "encodings": figures})


if __name__ == "__main__":
    main()
