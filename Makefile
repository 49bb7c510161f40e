# The two commands of the README: `make demo` and `make test` (and `make bench`).
# All build .venv on first use, so a fresh machine needs only python3.11 and make.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
BENCH_WORK  := build/bench

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test lint venv clean bench

venv: $(STAMP)

$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q

demo: $(STAMP)
	VENV=$(VENV) scripts/demo.sh

# The bench extra (ADAPT, tf-keras) on top of the dev install; see pyproject.toml.
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	touch $(BENCH_STAMP)

# Every benchmark, each writing bench/results/<name>.json, then docs/PERFORMANCE.md's
# tables regenerated from them. One tiny model is exported for the serving and client
# benchmarks. The settings keep the whole run under 30 minutes on 2 busy cores.
bench: $(BENCH_STAMP)
	rm -rf $(BENCH_WORK) && mkdir -p $(BENCH_WORK) bench/results
	date +%s > $(BENCH_WORK)/started
	$(PY) bench/_common.py export $(BENCH_WORK)/export
	$(PY) bench/train_throughput.py --steps 60 --repeats 3
	$(PY) bench/train_vs_adapt.py --steps 500 --rounds 3
	$(PY) bench/serve_latency.py --model-dir $(BENCH_WORK)/export/models
	$(PY) bench/client_throughput.py --model-dir $(BENCH_WORK)/export/models --baseline-images 1000
	$(PY) bench/client_startup.py --model-dir $(BENCH_WORK)/export/models --runs 10 \
		--predict-runs 3
	$(PY) bench/limits.py
	$(PY) bench/performance_page.py --started $$(cat $(BENCH_WORK)/started)

clean:
	rm -rf runs .pytest_cache .ruff_cache
