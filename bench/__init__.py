"""The benchmarks: each script runs from the repository root as ``python -m bench.NAME``
(``--help`` for its options) and writes ``bench/results/NAME.json``; ``make bench``
runs them all and regenerates the tables of docs/PERFORMANCE.md. Not shipped: the
package and ``harness`` are imported from the checkout.
"""
