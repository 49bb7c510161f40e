"""Test and benchmark harness, not shipped: a ``dann-serve serve`` child process on
free ports (``server_process``), a concurrent Predict load (``load``), copies of an
export without some signatures, as older exports are (``exports``), and the system's
Chromium for the web page (``browser``).

It is a package of the checkout, imported as ``harness`` from the repository root: by
the tests (pytest's ``pythonpath``) and by the benchmarks (``python -m bench.NAME``).
"""
