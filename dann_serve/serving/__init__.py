"""Serving: ``dann-serve serve``, a local server speaking TensorFlow Serving's APIs.

Laid out like TensorFlow Serving itself: the model loader (``loader``: a SavedModel
loaded the way TF Serving loads it) and ``model_config`` (``models.config``: the version
policy, version labels, and ``promote``, which moves a label); the core
(``registry``: which versions are served, polled from disk; ``signature``: one
signature's checks and call, with ``images``, the sizes encoded images declare, bounded
before the graph decodes them; ``service``: the three calls in TF Serving's messages);
the front ends (``grpc_api``, ``rest_api`` over ``http_server``, with ``admission``, the
REST bounds a slow peer cannot exhaust, and ``page``, the web page on the REST port);
``status``, the one error type both front ends translate; ``monitoring`` (Prometheus
metrics, the record of each request) and ``logs`` (log lines, the access log);
``observers`` (what else sees each answered prediction): ``live_monitor`` (per
version, a window of answers held to the export's reference, off the request path) and
``capture`` (a sample of served images kept as files); ``server``, which runs the lot.

May import: :mod:`dann_client.contract` and :mod:`dann_client.tensors` (the wire
contract and codec both sides share), :mod:`dann_client.png` (the one PNG encoder, for
captured pixels), :mod:`dann_client.preprocessing` (which files are images; a file as
the model sees it, for the web page) with its :mod:`dann_client.errors`, the
top-level ``runtime`` and ``files``, and :mod:`dann_serve.drift` (the monitor's
statistics: numpy and scipy only).
Nothing of data, model, training, export or experiments: a server needs only the
exported files.
"""
