"""The serving contract both sides import: names, shapes, ports, sizes, defaults.

One definition of each: the export writes these names into the SavedModel and its
ONNX twins, ``dann-serve serve`` listens on these ports and accepts messages up to
its limit, and the client sends and reads exactly these names. Kept free of imports
so that the CLIs can show defaults and choices in ``--help`` without loading grpc,
protobuf or numpy, and so that ``dann_serve`` can import it without the client's
dependencies.
"""

from __future__ import annotations

# -- the model: what goes in and what comes out -------------------------------------------

IMAGE_SIZE = 32  # pixels per side
CHANNELS = 3  # RGB
INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, CHANNELS)  # one image, float32 in [0, 1]
NUM_CLASSES = 10  # digits 0-9: columns of predict_label's probabilities
DOMAIN_NAMES = ("source", "target")  # columns 0 and 1 of classify_domain's probabilities
NUM_DOMAINS = len(DOMAIN_NAMES)

INPUT_NAME = "images"
PREDICT_LABEL = "predict_label"
CLASSIFY_DOMAIN = "classify_domain"
SIGNATURES = (PREDICT_LABEL, CLASSIFY_DOMAIN)
# The same answers as predict_label from encoded image files (string [-1], PNG, JPEG,
# GIF or BMP bytes, decoded and preprocessed in the graph) and from uint8 pixels
# [-1, 32, 32, 3] before division by 255: a quarter of predict_label's bytes.
PREDICT_IMAGE = "predict_image"
PREDICT_LABEL_UINT8 = "predict_label_uint8"
LABEL_TWINS = (PREDICT_LABEL_UINT8, PREDICT_IMAGE)
# Every signature an export writes (beside serving_default). SIGNATURES stays the ones a
# user asks for by name; exports made before issue 18 have only those.
EXPORTED_SIGNATURES = (*SIGNATURES, *LABEL_TWINS)
# TensorFlow Serving's name for the signature of a request that names none; the
# export makes it predict_label.
SERVING_DEFAULT = "serving_default"
# The integer output in which each signature gives its answer.
ANSWER_OUTPUT = {PREDICT_LABEL: "label", CLASSIFY_DOMAIN: "domain"}
PROBABILITIES_OUTPUT = "probabilities"
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
