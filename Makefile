# Entry points of a fresh machine: `make demo` (pre-train a tiny brn_sum, the
# recommended recipe hparams/brn_sum_unmasked.yaml, on
# the built-in demo corpus) and `make test` (the test suite, as CI runs it).
#
# Every package is installed at the exact version of requirements/lock.txt
# (all extras, every platform; `make lock` regenerates it from setup.py), so
# a fresh machine installs what CI tested, whatever was released since.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements/lock.txt
PIP_VERSION := 26.3
UV_VERSION := 0.13.9

.PHONY: venv test demo bench lock clean

$(STAMP): setup.py pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q pip==$(PIP_VERSION)
	$(PY) -m pip install -q -c $(LOCK) -e ".[dev]"
	$(PY) -m muselq_sb.utils.environment
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --doctest-modules muselq_sb tests

demo: $(STAMP)
	$(PY) recipes/pretrain/train.py hparams/brn_sum_unmasked.yaml --size=tiny

# Resolves every dependency of setup.py (all extras) for Linux, macOS and
# Windows, Python 3.11+. Pins already in the lock are kept (a new dependency
# gets today's version); `make lock UPGRADE=--upgrade` moves every pin to
# today's newest. Review the diff, then `make clean test`.
UPGRADE ?=
lock:
	test -x .venv-lock/bin/uv || ($(PYTHON) -m venv .venv-lock && .venv-lock/bin/pip install -q uv==$(UV_VERSION))
	.venv-lock/bin/uv pip compile setup.py --all-extras --universal \
	    --python-version 3.11 --annotation-style line \
	    --custom-compile-command "make lock" $(UPGRADE) -o $(LOCK)

clean:
	rm -rf $(VENV) .venv-lock results

# Benchmarks (docs/benchmarks.md, where the same commands are listed): each
# script prints a table and writes results/bench/<name>.json; ~20 min in all
# on an idle 2-core CPU, half of it MERT-330M's 5-minute pass.
bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/quantizer.py
	$(PY) benchmarks/hardware_limit.py
	$(PY) benchmarks/pretrain_throughput.py --repeats 3 --profile
	$(PY) benchmarks/unmasked_heads.py --repeats 5
	$(PY) benchmarks/mixer_scaling.py --repeats 5
	$(PY) benchmarks/data_pipeline.py --repeats 5 --out results/bench/data_pipeline.json
	$(PY) benchmarks/decoders.py --repeats 7
	$(PY) benchmarks/encoders_vs_peers.py --repeats 3
	$(PY) benchmarks/whole_track.py
	$(PY) benchmarks/export_int8.py
	$(PY) benchmarks/param_counts.py
