"""Names fixed by DESIGN.md, and the client's defaults, in one import-free module.

Kept free of imports so that the CLI can show defaults and choices in ``--help``
without loading grpc, protobuf or numpy.
"""

from __future__ import annotations

INPUT_NAME = "images"
PREDICT_LABEL = "predict_label"
CLASSIFY_DOMAIN = "classify_domain"
SIGNATURES = (PREDICT_LABEL, CLASSIFY_DOMAIN)
# The integer output in which each signature gives its answer.
ANSWER_OUTPUT = {PREDICT_LABEL: "label", CLASSIFY_DOMAIN: "domain"}
PROBABILITIES_OUTPUT = "probabilities"
DOMAIN_NAMES = ("source", "target")  # columns 0 and 1 of classify_domain's probabilities

DEFAULT_SERVER = "localhost:8500"
DEFAULT_MODEL = "dann"
DEFAULT_TIMEOUT = 10.0  # seconds per attempt
DEFAULT_RETRIES = 3  # extra attempts after UNAVAILABLE
DEFAULT_BATCH_SIZE = 64  # images per request, before the message-size cap
DEFAULT_IN_FLIGHT = 3  # batches being answered while the next one is read
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""gRPC's default receive limit, which servers keep unless told otherwise; requests
stay under it so that any server accepts them."""
