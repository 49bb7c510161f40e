# The two commands of the README: `make demo` and `make test` (and `make bench`;
# `make test-fast` while editing).
# All build .venv on first use, so a fresh machine needs only python3.11 and make.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
BENCH_WORK  := build/bench
RESULTS_RUNS ?= runs/compare
# Every third-party distribution, pinned for Python 3.11 on x86_64 Linux; see `lock`.
LOCK   := constraints.txt
UV_VERSION := 0.13.9

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo demo-drift test test-fast lint venv clean bench lock results browser page-screenshot

venv: $(STAMP)

# Our two distributions are installed from the checkout, editable, in one pip command:
# the client from ./client (the root's `dann-client` requirement is met by it, never by a
# package index, where that name is not ours) and the root with its dev extra. $(LOCK)
# is a constraints file (-c), not a requirements file (-r): it pins versions without
# asking for anything, so this install and the bench one below take only what their
# extras need from the same pins, and it can leave our own packages out (pip refuses
# editable constraints). Redone whenever the lock or either pyproject.toml changes.
# Both of ours are uninstalled first, and the .egg-info folders setuptools leaves in the
# checkout removed, so that files moving from one to the other install cleanly: when
# dann_client left the root, upgrading in place installed bin/dann-client with the client
# and then deleted it with the old root, and the old file lists kept dann_client.
$(STAMP): pyproject.toml client/pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip uninstall --quiet --quiet --yes dann-serve dann-client
	rm -rf dann_serve.egg-info client/dann_client.egg-info
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(LOCK) -e ./client -e ".[dev]"
	touch $(STAMP)

# ruff, then mypy on dann_serve and the client (its settings: [tool.mypy] in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The whole suite, spread over TEST_WORKERS processes (pytest-xdist) a test file at a
# time, so that a module's fixtures are built once; each process builds the session's
# (the tiny trained run, its export) for itself. CI runs this.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: lint browser
	$(PYTEST)

# The web page's tests drive Debian's Chromium through Playwright (the dev extra), never
# a browser build Playwright downloads; installed here when missing, with apt-get as
# root or through sudo. Without it those tests fail, saying so; they are not skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then sudo=; \
		elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
		else echo "make: chromium is missing; install it as root: apt-get install chromium" >&2; exit 1; fi; \
		command -v apt-get >/dev/null 2>&1 || { echo "make: chromium is missing and this" \
			"system has no apt-get: install Chromium with its package manager" >&2; exit 1; }; \
		echo "make: installing Debian's chromium for the web page's browser tests"; \
		$$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium; }

# The edit-test loop: every test but those marked slow (several trainings, training or
# worker processes, kills, package installs, benchmarks), no lint.
test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

# docs/page.png: the web page in Chromium over a tiny export (trained here, a minute).
page-screenshot: $(STAMP) browser
	$(PY) -m bench.page_screenshot --out docs/page.png

demo: $(STAMP)
	VENV=$(VENV) scripts/demo.sh

# The served demo model meets digits turned by 30 degrees: monitor, capture, adapt,
# export, promote to canary; the new version's estimate rises and it is no longer shifted
# (README, "When the inputs change"). Reuses runs/demo, or trains it: about 3 minutes
# from a fresh clone on 2 cores, under 2 with runs/demo.
demo-drift: $(STAMP)
	VENV=$(VENV) scripts/demo_drift.sh

# docs/RESULTS.md from the finished runs under $(RESULTS_RUNS), the default --out of
# `dann-serve compare` (docs/RESULTS.md shows the commands that train them): only the
# block between its results markers and the figures in docs/results/ change. It trains
# nothing; a missing run is listed. `dann-serve report` alone writes RESULTS.md beside
# the runs, never here. More report options: RESULTS_ARGS='--seeds 0,1 --no-tsne'.
results: $(STAMP)
	$(VENV)/bin/dann-serve report --runs $(RESULTS_RUNS) --out docs/RESULTS.md $(RESULTS_ARGS)

# The bench extra (ADAPT, tf-keras) on top of the dev install, from the same lock; see
# pyproject.toml.
$(BENCH_STAMP): $(STAMP) pyproject.toml client/pyproject.toml $(LOCK)
	$(PY) -m pip install --quiet -c $(LOCK) -e ./client -e ".[dev,bench]"
	touch $(BENCH_STAMP)

# Regenerate $(LOCK) with uv after changing a dependency in either pyproject.toml: every
# transitive dependency of the root with its dev and bench extras and of the client with
# all of its extras, for Python 3.11 on x86_64 Linux whatever machine runs it. Versions
# already in $(LOCK) are kept where they still fit; to move them on, add
# LOCK_ARGS=--upgrade (all) or LOCK_ARGS='--upgrade-package NAME'. Needs only a venv with
# uv, not an install that matches the old lock.
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv==$(UV_VERSION)
	printf '%s\n' '-e ./client[onnx,test]' '-e .[dev,bench]' | $(VENV)/bin/uv pip compile - \
		--python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
		--no-emit-package dann-serve --no-emit-package dann-client \
		--custom-compile-command "make lock" --quiet $(LOCK_ARGS) -o $(LOCK)

# Every benchmark, each writing bench/results/<name>.json, then docs/PERFORMANCE.md's
# tables regenerated from them; the hostile-request probe too, whose failure fails the
# target once the page is written. One tiny model is exported for the serving and client
# benchmarks. The settings keep the whole run under 30 minutes on 2 busy cores. Each
# script runs as a module of the checkout's `bench` package, from the root (`-m`).
bench: $(BENCH_STAMP)
	rm -rf $(BENCH_WORK) && mkdir -p $(BENCH_WORK) bench/results
	date +%s > $(BENCH_WORK)/started
	$(PY) -m bench._common export $(BENCH_WORK)/export
	$(PY) -m bench.train_throughput --steps 120 --repeats 3
	$(PY) -m bench.train_vs_adapt --steps 300 --rounds 3
	$(PY) -m bench.time_to_accuracy --rounds 3
	$(PY) -m bench.serve_latency --model-dir $(BENCH_WORK)/export/models
	$(PY) -m bench.image_agreement --model-dir $(BENCH_WORK)/export/models
	$(PY) -m bench.client_throughput --model-dir $(BENCH_WORK)/export/models --baseline-images 1000
	$(PY) -m bench.client_startup --model-dir $(BENCH_WORK)/export/models --runs 10 \
		--predict-runs 3
	$(PY) -m bench.decode_cache --repeats 5 --whole-runs 3
	$(PY) -m bench.limits
	$(PY) -m bench.probe --model-dir $(BENCH_WORK)/export/models --json bench/results/probe.json \
		|| touch $(BENCH_WORK)/probe-failed
	$(PY) -m bench.performance_page --started $$(cat $(BENCH_WORK)/started)
	@test ! -e $(BENCH_WORK)/probe-failed || { echo "bench.probe: hostile cases failed" \
		"(docs/PERFORMANCE.md, Hostile requests)" >&2; exit 1; }

clean:
	rm -rf runs .pytest_cache .ruff_cache .mypy_cache
