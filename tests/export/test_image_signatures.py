"""``predict_label``'s twins: ``predict_label_uint8`` (the pixels before / 255) and
``predict_image`` (encoded files decoded in the graph), in the export and through
``dann-serve serve`` over gRPC and REST; an export made before them still served, and
one whose image signature has another name checked just the same."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageDraw
from support.helpers import models_copy, outputs, predict_request, rest
from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

from bench import image_agreement
from dann_client.contract import PREDICT_IMAGE, PREDICT_LABEL_UINT8, TWINS
from dann_client.framing import ink_box
from dann_client.preprocessing import encode_png, image_to_array, layout_batch, to_model_input
from dann_serve.data.mnist import IMAGES_MAGIC, read_idx
from dann_serve.export.image_input import decode_images
from dann_serve.serving.images import HeaderError, image_size
from dann_serve.serving.model_config import CONFIG_FILE, add_model_to_config
from dann_serve.serving.status import ServingError
from dann_serve.serving.tensors import strings_from_json, to_numpy
from harness.exports import copy_renaming_signatures, copy_without_signatures

PREDICT = "/v1/models/dann:predict"
# predict_image under a name the server knows nothing of: its string input is what
# makes the server check the image headers, not the name.
RENAMED = "read_files"
# Each model with the name of its image signature.
IMAGE_SIGNATURES = [("dann", PREDICT_IMAGE), ("renamed", RENAMED)]


def png(pixels: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, "PNG")
    return buffer.getvalue()


def b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(18).integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def mnist(shared_data) -> np.ndarray:
    """The first 1,000 MNIST test digits, uint8 [1000, 28, 28], white on black."""
    folder = shared_data("mnist", "t10k-images-idx3-ubyte.gz") / "mnist"
    return read_idx(folder / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC)[:1000]


def labels(function, inputs: np.ndarray) -> np.ndarray:
    return function(images=tf.constant(inputs))["label"].numpy()


# -- the export ---------------------------------------------------------------------------


def test_a_fresh_export_has_both_twins(in_process, exported_model: Path) -> None:
    for name, dtype, shape in (
        (PREDICT_LABEL_UINT8, tf.uint8, [None, 32, 32, 3]),
        (PREDICT_IMAGE, tf.string, [None]),
    ):
        _, inputs = in_process.signatures[name].structured_input_signature
        assert (inputs["images"].dtype, inputs["images"].shape.as_list()) == (dtype, shape)
        assert set(in_process.signatures[name].structured_outputs) == {"probabilities", "label"}
    report = json.loads((exported_model / "export.json").read_text())
    assert {name: report["signatures"][name]["answers_as"] for name in TWINS} == {
        name: "predict_label" for name in TWINS
    }


def test_uint8_gives_the_answers_of_float32_on_pixels_over_255(in_process, pixels) -> None:
    want = in_process.signatures["predict_label"](images=tf.constant(to_model_input(pixels)))
    got = in_process.signatures[PREDICT_LABEL_UINT8](images=tf.constant(pixels))
    np.testing.assert_array_equal(got["label"], want["label"])
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-6)


def test_predict_image_agrees_with_the_client_on_1000_mnist_pngs(
    in_process, mnist: np.ndarray
) -> None:
    """The acceptance figures: each pairwise label agreement >= 99.5% (printed)."""
    files = image_agreement.encodings(mnist)["png"]
    figures = image_agreement.agreement(in_process, files)
    print({k: v for k, v in figures.items() if " vs " in k})
    for pair in ("predict_image vs uint8", "predict_image vs float32", "uint8 vs float32"):
        assert figures[pair] >= image_agreement.GOAL, figures


def test_transparent_digits_come_out_as_their_digit(in_process, mnist: np.ndarray) -> None:
    """White ink on transparent is flattened onto black, black ink onto white: the
    decoded image is the digit (or its negative), and the label that of the same
    digit as an opaque RGB PNG (the same size, so the same framing). The negative is
    within two levels: each of the resize's two passes rounds half up, on the digit
    and on its negative alike."""
    digits = mnist[:300]
    files = image_agreement.encodings(digits)
    # In a graph, as the export runs it: eagerly, the per-image loop costs seconds.
    decode = tf.function(decode_images)
    opaque = decode(tf.constant(files["png rgb"])).numpy().astype(int)
    white = decode(tf.constant(files["png rgba white ink on transparent"])).numpy()
    black = decode(tf.constant(files["png rgba black ink on transparent"])).numpy()
    assert np.abs(white.astype(int) - opaque).max() <= 1
    assert np.abs((255 - black.astype(int)) - opaque).max() <= 2
    predict = in_process.signatures[PREDICT_IMAGE]
    plain = labels(predict, np.array(files["png rgb"], dtype=object))
    for kind in ("white", "black"):
        got = labels(predict, np.array(files[f"png rgba {kind} ink on transparent"], object))
        assert np.mean(got == plain) >= 0.99, kind


def test_the_graph_decodes_as_pillow_does(rng) -> None:
    """One batch of files on every path of the graph (the fast one for PNGs of the
    model's size, the general one for the rest), each within one level of the client's
    pixels and in its place in the batch."""
    bmp = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (30, 45, 3), dtype=np.uint8)).save(bmp, "BMP")
    cases = [
        png(rng.integers(0, 256, (28, 28), dtype=np.uint8)),  # grey, MNIST's layout
        png(rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)),  # wide, padded
        png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)),  # the model's size
        png(rng.integers(0, 256, (50, 37, 4), dtype=np.uint8), "RGBA"),  # tall, alpha
        png(rng.integers(0, 256, (32, 32), dtype=np.uint8)),  # grey, the model's size
        png(_texture(rng)),  # a texture: not plain, passes unchanged
        png(rng.integers(0, 256, (1, 100, 3), dtype=np.uint8)),  # a line
        bmp.getvalue(),
    ]
    got = decode_images(tf.constant(cases)).numpy().astype(int)
    for index, data in enumerate(cases):
        want = image_to_array(Image.open(io.BytesIO(data))).astype(int)
        assert np.abs(got[index] - want).max() <= 1, index


def _texture(rng) -> np.ndarray:
    """A 32x32 RGB texture with a dark object on it: smooth blobs under fine noise."""
    blobs = Image.fromarray(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8))
    smooth = np.asarray(blobs.resize((32, 32), Image.Resampling.BICUBIC)).astype(int)
    texture = np.clip(smooth + rng.normal(0, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
    texture[10:20, 12:18] = 0
    return texture


# In a graph, as the export runs it: eagerly, the per-image loop costs seconds.
_decode = tf.function(decode_images)


def _agreement(files: list[bytes]) -> tuple[int, float]:
    """The graph's decoded pixels against the client's: the largest difference, in grey
    levels, and the share of pixels that differ at all."""
    got = _decode(tf.constant(files)).numpy().astype(int)
    want = np.stack([image_to_array(Image.open(io.BytesIO(data))) for data in files])
    difference = np.abs(got - want)
    return int(difference.max()), float(np.mean(difference > 0))


@pytest.mark.parametrize(
    "kind",
    ["png tight black on white", "png tight 16x16 black on white", "png wide margin 60x44 rgb"],
)
def test_the_graph_frames_digits_as_the_client_does(mnist: np.ndarray, kind: str) -> None:
    """300 MNIST digits cut tight (black on white, as they are or shrunk to 16x16, shape kept) or
    in wide margins: the graph finds the same ink, box and centre as the client (a pixel
    of shift would differ by up to 255 levels), and its resize is within two levels of
    Pillow's (printed: the largest difference and the share of pixels that differ)."""
    largest, share = _agreement(image_agreement.encodings(mnist[:300])[kind])
    print(kind, largest, share)
    assert largest <= 2 and share < 0.02


def _own_size(digit: np.ndarray, size: int, margin: int, black_on_white: bool) -> np.ndarray:
    """An MNIST digit cut to its ink, centred in a square of ``margin`` pixels beyond the
    ink's longer side (0: cut tight), resized to ``size`` x ``size``."""
    top, left, bottom, right = ink_box(digit > 0)
    ink = digit[top:bottom, left:right]
    side = max(ink.shape) + 2 * margin
    rows, columns = side - ink.shape[0], side - ink.shape[1]
    square = np.pad(ink, ((rows // 2, rows - rows // 2), (columns // 2, columns - columns // 2)))
    out = np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR))
    return 255 - out if black_on_white else out


OWN_SIZES = {
    "tight 28x28 black on white": lambda d: png(_own_size(d, 28, 0, True)),
    "tight 28x28 white on black": lambda d: png(_own_size(d, 28, 0, False)),
    "tight 32x32 rgb black on white": lambda d: png(np.dstack([_own_size(d, 32, 0, True)] * 3)),
    "tight 32x32 grey white on black": lambda d: png(_own_size(d, 32, 0, False)),
    "wide margin 28x28": lambda d: png(_own_size(d, 28, 12, False)),
}


@pytest.mark.parametrize("kind", OWN_SIZES)
def test_the_graph_frames_digits_of_the_models_own_sizes_as_the_client_does(
    mnist: np.ndarray, kind: str
) -> None:
    """300 MNIST digits as 28x28 or 32x32 files, cut tight to the ink or small in a wide
    margin: both sides frame them (none comes out as laid out), and agree within two
    levels (printed: the largest difference and the share of pixels that differ); the
    same laid out and sent as the client sends them are taken as they are."""
    files = [OWN_SIZES[kind](digit) for digit in mnist[:300]]
    laid_out = np.stack(
        [layout_batch(np.asarray(Image.open(io.BytesIO(f)))[None])[0] for f in files]
    )
    assert not (_decode(tf.constant(files)).numpy() == laid_out).all(axis=(1, 2, 3)).any()
    # The client's own files (encode_png: marked as laid out) come back as they went.
    marked = [encode_png(image) for image in laid_out]
    np.testing.assert_array_equal(_decode(tf.constant(marked)).numpy(), laid_out)
    largest, share = _agreement(files)
    print(kind, largest, share)
    assert largest <= 2 and share < 0.02


def test_mnist_digits_pass_through_as_laid_out(shared_data, mnist: np.ndarray) -> None:
    """MNIST's layout follows the framing rule: of its 10,000 test digits read as files
    by the client, at least 99.9% come out byte for byte as the array path lays them out
    (printed; 99.97%, three framed again); the graph gives the same bytes as the client
    on the first 1,000, as 28x28 grey, as black on white and as 32x32 RGB."""
    folder = shared_data("mnist", "t10k-images-idx3-ubyte.gz") / "mnist"
    digits = read_idx(folder / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC)
    read = np.stack([image_to_array(Image.fromarray(digit)) for digit in digits])
    same = (read == layout_batch(digits)).all(axis=(1, 2, 3))
    print("passed through:", same.mean(), "framed:", np.flatnonzero(~same).tolist())
    assert same.mean() >= 0.999
    for files in (
        [png(digit) for digit in mnist],
        [png(255 - digit) for digit in mnist],
        [png(np.dstack([np.pad(digit, 2)] * 3)) for digit in mnist],
    ):
        assert _agreement(files) == (0, 0.0)


def test_the_graph_frames_drawn_digits_as_the_client_does(rng) -> None:
    """Without real data: strokes drawn on paper of several colours and sizes, dark on
    light and light on dark, tight and with margins, framed alike on both sides."""
    files = []
    for _ in range(40):
        height, width = (int(v) for v in rng.integers(12, 90, size=2))
        paper, ink = (tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(2))
        if max(abs(a - b) for a, b in zip(paper, ink, strict=True)) < 100:
            ink = tuple(255 - v for v in paper)
        image = Image.new("RGB", (width, height), paper)
        draw = ImageDraw.Draw(image)
        points = [tuple(int(v) for v in rng.integers(0, (width, height))) for _ in range(4)]
        draw.line(points, fill=ink, width=max(1, min(width, height) // 8))
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        files.append(buffer.getvalue())
    largest, _ = _agreement(files)
    assert largest <= 2


@pytest.mark.parametrize("colour", [(0, 204, 68), (15, 195, 75), (0, 204, 67)])
def test_the_graph_applies_the_clients_transparency_rule_at_its_threshold(colour) -> None:
    """Half-transparent ink whose luminance is exactly 0.5 (the first two; 0.49999... in
    floating point) or just under it: the graph picks the background the client picks."""
    pixels = np.zeros((40, 40, 4), np.uint8)
    pixels[...] = (*colour, 128)
    data = png(pixels, "RGBA")
    got = decode_images(tf.constant([data])).numpy()[0].astype(int)
    want = image_to_array(Image.open(io.BytesIO(data))).astype(int)
    assert np.abs(got - want).max() <= 1, (got[0, 0], want[0, 0])


# -- header sizes (the decompression-bomb bound) --------------------------------------------


def test_image_headers_give_the_size_the_decoder_will_make() -> None:
    frames = [Image.new("L", (40, 30), level) for level in (0, 80, 160)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    found = {}
    for kind in ("PNG", "JPEG", "BMP"):
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30)).save(buffer, kind)
        found[kind] = image_size(buffer.getvalue())
    found["GIF"] = image_size(gif.getvalue())
    assert {k: (v.kind, v.width, v.height, v.frames) for k, v in found.items()} == {
        "PNG": ("PNG", 40, 30, 1),
        "JPEG": ("JPEG", 40, 30, 1),
        "BMP": ("BMP", 40, 30, 1),
        "GIF": ("GIF", 40, 30, 3),
    }
    for data in (b"", b"hello, world", png(np.zeros((4, 4), np.uint8))[:20], b"GIF89a\x10"):
        with pytest.raises(HeaderError):
            image_size(data)


def test_string_tensors_are_bounded_by_their_bytes() -> None:
    """Over gRPC (string_val) and REST (b64), before the rest of the strings are read."""
    proto = tf.make_tensor_proto(np.array([b"a" * 10, b"b" * 10], dtype=object))
    assert to_numpy(proto, "images", 20).tolist() == [b"a" * 10, b"b" * 10]
    values = [b64(b"x" * 10), b64(b"y" * 10)]
    assert strings_from_json(values, "images", max_bytes=20).tolist() == [b"x" * 10, b"y" * 10]
    for read in (
        lambda limit: to_numpy(proto, "images", limit),
        lambda limit: strings_from_json(values, "images", max_bytes=limit),
    ):
        with pytest.raises(ServingError, match=r"^input images: strings 0-1 hold 20 bytes"):
            read(19)
        with pytest.raises(ServingError, match=r"^input images\[0\]: 10 bytes, over the limit"):
            read(9)


# -- dann-serve serve ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(exported_model: Path, start_server, tmp_path_factory):
    """One server for the module: model ``dann`` (the export), ``old`` (the same
    export without the twins) and ``renamed`` (with predict_image as ``RENAMED``)."""
    model_dir = models_copy(exported_model, tmp_path_factory.mktemp("twins"))
    copy_without_signatures(exported_model, model_dir / "old" / exported_model.name)
    copy_renaming_signatures(
        exported_model, model_dir / "renamed" / exported_model.name, {PREDICT_IMAGE: RENAMED}
    )
    for name in ("old", "renamed"):
        add_model_to_config(model_dir / CONFIG_FILE, name)
    return start_server(model_dir).wait_ready("old").wait_ready("renamed")


def test_grpc_predict_image_and_uint8_answer_like_predict_label(
    prediction, in_process, pixels
) -> None:
    want = labels(in_process.signatures["predict_label"], to_model_input(pixels))
    files = np.array([png(image) for image in pixels], dtype=object)
    for signature, inputs in ((PREDICT_IMAGE, files), (PREDICT_LABEL_UINT8, pixels)):
        request = predict_request(inputs, signature)
        assert request.inputs["images"].string_val or request.inputs["images"].tensor_content
        got = outputs(prediction.Predict(request, timeout=60))
        np.testing.assert_array_equal(got["label"], want)


def test_rest_takes_b64_pngs_and_integer_pixels(server, in_process, pixels) -> None:
    """The raw JSON a ``curl`` user writes: row and columnar forms, named or not."""
    want = labels(in_process.signatures["predict_label"], to_model_input(pixels)).tolist()
    files = [b64(png(image)) for image in pixels]
    bodies = [
        {"signature_name": PREDICT_IMAGE, "instances": files},
        {"signature_name": PREDICT_IMAGE, "instances": [{"images": f} for f in files]},
        {"signature_name": PREDICT_IMAGE, "inputs": {"images": files}},
        {"signature_name": PREDICT_IMAGE, "inputs": files},
        {"signature_name": PREDICT_LABEL_UINT8, "instances": pixels.tolist()},
    ]
    for body in bodies:
        status, answer = rest(server, PREDICT, json.dumps(body).encode())
        assert status == 200, answer
        rows = answer.get("predictions") or answer["outputs"]
        got = [row["label"] for row in rows] if isinstance(rows, list) else rows["label"]
        assert got == want, body.keys()


@pytest.mark.parametrize(("model", "signature"), IMAGE_SIGNATURES)
def test_a_bad_image_is_refused_naming_its_index(
    server, prediction, pixels, model: str, signature: str
) -> None:
    good = [png(image) for image in pixels[:4]]
    path = f"/v1/models/{model}:predict"
    for bad, reason in (
        (b"GIF89a\x10\x00", "a GIF cut short"),
        (good[0][:200], "cannot decode it"),  # the header is whole, the data is not
    ):
        batch = np.array([*good[:2], bad, good[3]], dtype=object)
        with pytest.raises(grpc.RpcError) as caught:
            prediction.Predict(predict_request(batch, signature, model=model))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith(f"input images[2]: {reason}")
        body = {"signature_name": signature, "instances": list(map(b64, batch))}
        status, answer = rest(server, path, body)
        assert status == 400 and answer["error"].startswith(f"input images[2]: {reason}")
    body = {"signature_name": signature, "instances": [{"b64": "not base64!"}]}
    status, answer = rest(server, path, body)
    assert status == 400 and answer["error"].startswith("input images[0]: 'b64' is not base64")


@pytest.mark.parametrize(("model", "signature"), IMAGE_SIGNATURES)
def test_a_decompression_bomb_is_refused_before_decoding(
    server, prediction, model: str, signature: str
) -> None:
    """100 million pixels in about 100 KB: refused from the header, in a few ms."""
    bomb = io.BytesIO()
    Image.new("L", (10_000, 10_000)).save(bomb, "PNG")
    files = np.array([bomb.getvalue()], dtype=object)
    with pytest.raises(grpc.RpcError) as caught:
        prediction.Predict(predict_request(files, signature, model=model), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "a 10000x10000 PNG would decode to 400,000,000 bytes" in caught.value.details()
    assert "decompression bomb" in caught.value.details()
    body = {"signature_name": signature, "inputs": [b64(bomb.getvalue())]}
    status, answer = rest(server, f"/v1/models/{model}:predict", body)
    assert status == 400 and "decompression bomb" in answer["error"]


def test_an_export_without_the_twins_still_serves(server, channel, in_process, pixels) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "old"
    metadata = get_model_metadata_pb2.SignatureDefMap()
    stub.GetModelMetadata(request, timeout=30).metadata["signature_def"].Unpack(metadata)
    assert not set(TWINS) & set(metadata.signature_def)
    images = to_model_input(pixels)
    got = outputs(stub.Predict(predict_request(images, "predict_label", model="old")))
    want = labels(in_process.signatures["predict_label"], images)
    np.testing.assert_array_equal(got["label"], want)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(predict_request(pixels, PREDICT_LABEL_UINT8, model="old"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
