"""The server's resource bounds, in one place, with the status a request past each gets.

Every bound is checked before the memory it protects is taken: a message or body by
its declared length, a tensor by the shape it declares (never by expanding it), a JSON
body by a count of its separators, made before it is parsed. docs/RELIABILITY.md lists
them with their defaults and what they add up to. The module imports nothing heavy
(the command line reads its defaults); the errors are imported where they are raised.
"""

from __future__ import annotations

from dataclasses import dataclass

from dann_client.contract import MIB, SERVER_MAX_MESSAGE_BYTES

# The largest batch TensorFlow Serving's batching config (models/batching_parameters.txt)
# lets one request send.
DEFAULT_MAX_BATCH = 1024
# A batch of 1024 float32 images is 12 MiB; a decoded input may be a little more.
DEFAULT_MAX_TENSOR_BYTES = 16 * MIB
DEFAULT_MAX_IN_FLIGHT = 32
# TensorFlow Serving's --rest_api_timeout_in_ms default.
DEFAULT_REST_TIMEOUT = 30.0
# --capture-dir: the share of served images kept, and the most kept per model version
# (about 20 MB of 32x32 PNGs; enough to adapt to, see serving.capture).
DEFAULT_CAPTURE_RATE = 0.1
DEFAULT_CAPTURE_MAX_IMAGES = 10_000


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server."""

    max_batch: int = DEFAULT_MAX_BATCH  # first dimension of any input, per request
    max_message_bytes: int = SERVER_MAX_MESSAGE_BYTES  # gRPC message or REST body
    max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES  # one decoded input tensor
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT  # requests read, decoded or run at once
    rest_timeout: float = DEFAULT_REST_TIMEOUT  # seconds, whole REST request

    @property
    def max_json_items(self) -> int:
        """The most JSON values and arrays a REST body may hold: two per element of the
        largest tensor at 4 bytes an element (an image's nested arrays add a third of
        its values), so that the parser's Python objects stay within a small multiple
        of the tensor bound."""
        return 2 * (self.max_tensor_bytes // 4)

    def check_shape(self, name: str, shape: tuple[int, ...], itemsize: int) -> None:
        """INVALID_ARGUMENT for a declared shape past the batch or tensor bound."""
        from dann_serve.serving.status import invalid

        if shape and shape[0] > self.max_batch:
            # TF Serving's batching words it "Task size N is larger than maximum input
            # batch size M".
            raise invalid(
                f"input {name}: batch of {shape[0]} is over the limit of {self.max_batch} "
                f"per request (task size {shape[0]} is larger than maximum input batch size "
                f"{self.max_batch})"
            )
        count = 1
        for size in shape:
            count *= size
        if count * itemsize > self.max_tensor_bytes:
            raise invalid(
                f"input {name}: shape {list(shape)} would take {count * itemsize:,} bytes, "
                f"over the limit of {self.max_tensor_bytes:,}"
            )

    def check_json_size(self, body: bytes | bytearray) -> None:
        """RESOURCE_EXHAUSTED for a JSON body with more items than any allowed tensor.

        Every value or array json.loads builds is preceded by ``[`` or ``,`` or is the
        first of its array, so their count bounds what parsing will allocate.
        """
        import grpc

        from dann_serve.serving.status import ServingError

        items = body.count(b",") + body.count(b"[")
        if items > self.max_json_items:
            raise ServingError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request body holds about {items:,} JSON values, over the limit of "
                f"{self.max_json_items:,} (--max-tensor-mb)",
            )
