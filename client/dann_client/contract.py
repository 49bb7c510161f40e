"""The serving contract both sides import: names, shapes, ports, sizes, defaults.

One definition of each: the export writes these names into the SavedModel and its
ONNX twins, ``dann-serve serve`` listens on these ports and accepts messages up to
its limit, and the client sends and reads exactly these names. Each serving signature
is one row of ``SIGNATURE_TABLE``, which the export (functions, warm-up, ONNX, checks,
report) and the client (its choices, which input to send) read. Kept free of imports
beyond the standard library's ``dataclasses``, so that the CLIs can show defaults and
choices in ``--help`` without loading grpc, protobuf or numpy, and so that
``dann_serve`` can import it without the client's dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass

# -- the model: what goes in and what comes out -------------------------------------------

IMAGE_SIZE = 32  # pixels per side
CHANNELS = 3  # RGB
INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, CHANNELS)  # one image, float32 in [0, 1]
NUM_CLASSES = 10  # digits 0-9: columns of predict_label's probabilities
DOMAIN_NAMES = ("source", "target")  # columns 0 and 1 of classify_domain's probabilities
NUM_DOMAINS = len(DOMAIN_NAMES)

INPUT_NAME = "images"  # every signature's one input
PROBABILITIES_OUTPUT = "probabilities"
PREDICT_LABEL = "predict_label"
CLASSIFY_DOMAIN = "classify_domain"
PREDICT_LABEL_UINT8 = "predict_label_uint8"
PREDICT_IMAGE = "predict_image"
# TensorFlow Serving's name for the signature of a request that names none; the
# export makes it an alias of predict_label.
SERVING_DEFAULT = "serving_default"

# How a signature's input is made from uint8 pixels [N, 32, 32, 3]: the export's warm-up
# and parity checks make examples so, and the client sends batches so (its ``Wire``).
FLOAT_PIXELS = "float32"  # pixels / 255 as float32, the network's own input
UINT8_PIXELS = "uint8"  # the pixels themselves: a quarter of the bytes
PNG_FILES = "png"  # one lossless PNG file per image: one string each over REST

# TensorFlow's DataType names (as model metadata shows them) of the input dtypes used.
DATA_TYPES = {"float32": "DT_FLOAT", "uint8": "DT_UINT8", "string": "DT_STRING"}


@dataclass(frozen=True)
class ServingSignature:
    """One serving signature, as the export writes it, checks it and describes it, and
    as the client finds and calls it. Its one input is ``INPUT_NAME``."""

    name: str
    description: str  # one line: what it answers, from what
    dtype: str  # the input's dtype, as TensorFlow names it (a key of DATA_TYPES)
    shape: tuple[int | None, ...]  # the input's shape; None: any size (the batch)
    holds: str  # what the input holds, in words
    example: str  # how its input is made from pixels: FLOAT_PIXELS, UINT8_PIXELS, PNG_FILES
    outputs: tuple[str, str]  # the probabilities, then the integer answer
    answers_as: str  # the signature whose answers it gives: itself, or the one it twins
    without_onnx: str | None = None  # why it has no ONNX twin; None: it has one
    aliases: tuple[str, ...] = ()  # other names the export gives the same function

    @property
    def answer_output(self) -> str:
        """The output holding the integer answer (a label, a domain)."""
        return self.outputs[-1]

    @property
    def data_type(self) -> str:
        """The input's DataType name, as model metadata shows it: ``"DT_UINT8"``."""
        return DATA_TYPES[self.dtype]

    @property
    def input_text(self) -> str:
        """``"uint8 [-1, 32, 32, 3], pixels"``: the input as the export report shows it."""
        sizes = ", ".join("-1" if size is None else str(size) for size in self.shape)
        return f"{self.dtype} [{sizes}], {self.holds}"


LABEL_OUTPUTS = (PROBABILITIES_OUTPUT, "label")
PIXEL_BATCH = (None, *INPUT_SHAPE)
# Every signature an export writes, in the order it writes, warms up and checks them.
SIGNATURE_TABLE = (
    ServingSignature(
        name=PREDICT_LABEL,
        description="the digit in each image",
        dtype="float32",
        shape=PIXEL_BATCH,
        holds="pixels / 255",
        example=FLOAT_PIXELS,
        outputs=LABEL_OUTPUTS,
        answers_as=PREDICT_LABEL,
        aliases=(SERVING_DEFAULT,),
    ),
    ServingSignature(
        name=CLASSIFY_DOMAIN,
        description="whether each image looks like the source's or the target's",
        dtype="float32",
        shape=PIXEL_BATCH,
        holds="pixels / 255",
        example=FLOAT_PIXELS,
        outputs=(PROBABILITIES_OUTPUT, "domain"),
        answers_as=CLASSIFY_DOMAIN,
    ),
    ServingSignature(
        name=PREDICT_LABEL_UINT8,
        description="predict_label's answers from the pixels before the division by 255",
        dtype="uint8",
        shape=PIXEL_BATCH,
        holds="pixels",
        example=UINT8_PIXELS,
        outputs=LABEL_OUTPUTS,
        answers_as=PREDICT_LABEL,
    ),
    ServingSignature(
        name=PREDICT_IMAGE,
        description="predict_label's answers from image files, decoded and laid out in the graph",
        dtype="string",
        shape=(None,),
        holds="encoded PNG, JPEG, GIF or BMP files",
        example=PNG_FILES,
        outputs=LABEL_OUTPUTS,
        answers_as=PREDICT_LABEL,
        without_onnx=(
            "decodes image files with TensorFlow's DecodePng/DecodeJpeg/DecodeImage and "
            "resizes with ScaleAndTranslate, which have no ONNX operators; decode the file "
            "yourself and use predict_label_uint8.onnx"
        ),
    ),
)
SIGNATURE_ROWS = {row.name: row for row in SIGNATURE_TABLE}
EXPORTED_SIGNATURES = tuple(SIGNATURE_ROWS)
# The signatures a user asks for by name: those answering their own question.
SIGNATURES = tuple(row.name for row in SIGNATURE_TABLE if row.answers_as == row.name)
# The others give one of those's answers from a cheaper input; the client picks them
# itself, and exports made before they existed lack them (and are still served).
TWINS = tuple(row.name for row in SIGNATURE_TABLE if row.answers_as != row.name)
# A version's ONNX twins: ``<version>/onnx/<signature>.onnx``.
ONNX_DIR = "onnx"

# -- transparency: the background an image with alpha is flattened onto -------------------

BACKGROUND_AUTO = "auto"
"""The default background rule, the same in the client (``dann_client.background``) and
in ``predict_image``'s graph: if the image has any alpha < 255, flatten it onto black
when the alpha-weighted mean luminance of its pixels is >= ``LIGHT_INK_LUMINANCE``
(light ink), else onto white. Luminance is ``LUMINANCE_WEIGHTS`` . RGB / (1000 * 255),
the weighted mean is sum(alpha * luminance) / sum(alpha); a fully transparent image goes
onto white. Both sides compute it in whole numbers, so that they agree at the threshold
itself (in floating point, 0.299 * R + 0.587 * G + 0.114 * B can fall on either side)."""
LUMINANCE_WEIGHTS = (299, 587, 114)  # ITU-R BT.601 in thousandths, as Pillow's "L" mode
LIGHT_INK_LUMINANCE = 0.5

# -- framing: where a digit sits in the model's input ------------------------------------

MNIST_SIZE = 28  # MNIST's frame: grey images of this size are laid out already
MNIST_FIRST = (IMAGE_SIZE - MNIST_SIZE) // 2
"""Row and column of 32x32 where MNIST's 28x28 frame begins (its padding is 2 pixels)."""
FRAME_BOX = 20
"""A digit on a plain background is scaled so that the longer side of its ink's bounding
box is this many pixels (MNIST's 20x20 box, aspect kept), the same in the client
(``dann_client.framing``) and in ``predict_image``'s graph."""
FRAME_CENTRE = 16  # its centre of mass lands on this row and column (MNIST's (14, 14) + 2)
BACKGROUND_NEAR = 32
"""Grey levels (largest over R, G, B) within which a pixel counts as background."""
INK_CONTRAST = 64
"""The least difference from the background that the strongest ink must reach for a
background to be plain; ink is what differs by more than max(BACKGROUND_NEAR, half of it)."""
FRAME_BOX_SLACK = 2
FRAME_CENTRE_SLACK = 1
"""A 28x28 or 32x32 image already follows the rule, and passes through unchanged, when its
ink's longer side is within ``FRAME_BOX_SLACK`` pixels of ``FRAME_BOX`` and its centre of
mass, on each axis, within ``FRAME_CENTRE_SLACK`` pixels of where framing would put it:
so 99.97% of MNIST's test digits do (``dann_client.framing.reframe``)."""
LAID_OUT_PNG_TEXT = ("dann-serve", "model input")
"""The PNG ``tEXt`` chunk (keyword, text) that marks a file as the model's input laid out
already: ``dann_client.preprocessing.encode_png`` writes it, right after IHDR, in the
8-bit RGB 32x32 files the client sends ``predict_image`` over REST (and the export's
checks and warm-up records), whose pixels it has framed or taken as laid out itself.
Such a file is taken as it is, by the client and by ``predict_image``, never checked
against the framing rule again (which would move a few of the images it framed, and
most of a data set's that keeps its own layout, as fonts' does); a file without it is
checked, as any user's is."""

# -- the server ---------------------------------------------------------------------------

GRPC_PORT = 8500  # TensorFlow Serving's --port
REST_PORT = 8501  # TensorFlow Serving's --rest_api_port
MIB = 1024 * 1024
SERVER_MAX_MESSAGE_BYTES = 256 * MIB
"""The largest message ``dann-serve serve`` accepts and sends by default
(``--max-message-mb``). gRPC's default of 4 MiB would refuse a batch of 342 images;
1024 images are 12 MiB as float32 and about 60 MiB as REST JSON text. Test and
benchmark clients that talk only to this server use it for their channels too."""

PROMETHEUS_PATH = "/monitoring/prometheus/metrics"  # on the REST port, as TF Serving
# The REST API's OpenAPI description (dann-serve serve only; TF Serving has none).
OPENAPI_PATH = "/v1/openapi.json"

# -- the client's defaults ----------------------------------------------------------------

DEFAULT_SERVER = f"localhost:{GRPC_PORT}"
SERVER_ENVIRONMENT = "DANN_SERVER"  # sets --server's default
REST_SCHEMES = ("http://", "https://")  # a --server starting so is a REST URL, else gRPC
DEFAULT_MODEL = "dann"
DEFAULT_TIMEOUT = 10.0  # seconds per attempt
DEFAULT_RETRIES = 3  # extra attempts after UNAVAILABLE
DEFAULT_BATCH_SIZE = 256  # images per request, before the message-size cap
"""Large enough that the per-request costs on both sides (a gRPC call, a session run)
are spread thin: 256 against 64 cut the CPU per image by 14% in the client and 21% in
the server, and raised a folder's images/s by a quarter (docs/PERFORMANCE.md); small
enough that the first answers print at once and that uint8 (786 KB) and float32
(3 MB) requests fit under the 4 MiB cap."""
DEFAULT_IN_FLIGHT = 3  # batches being answered while the next one is read
CLIENT_MAX_REQUEST_BYTES = 4 * MIB
"""The client's cap on one request: gRPC's default receive limit, which servers
(TensorFlow Serving among them) keep unless told otherwise, so that any server
accepts what the client sends."""
CLIENT_MAX_RESPONSE_BYTES = 64 * MIB
"""The largest answer the client reads."""
