"""Test and benchmark harness, not shipped: a ``dann-serve serve`` child process on
free ports (``server_process``), a concurrent Predict load (``load``), and copies of an
export without some signatures, as older exports are (``exports``).

The tests and ``bench/`` import it from the checkout (pytest's ``pythonpath`` and
``bench/_common.py`` put the repository root on ``sys.path``).
"""
