# Entry points of a fresh machine: `make demo` (pre-train a tiny brn_sum on
# the built-in demo corpus) and `make test` (the test suite, as CI runs it).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test demo bench clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --doctest-modules muselq_sb tests

demo: $(STAMP)
	$(PY) recipes/pretrain/train.py hparams/brn_sum.yaml --size=tiny

clean:
	rm -rf $(VENV) results

# Benchmarks (docs/benchmarks.md, where the same commands are listed): each
# script prints a table and writes results/bench/<name>.json; ~20 min in all
# on an idle 2-core CPU, half of it MERT-330M's 5-minute pass.
bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/quantizer.py
	$(PY) benchmarks/hardware_limit.py
	$(PY) benchmarks/pretrain_throughput.py --repeats 3 --profile
	$(PY) benchmarks/mixer_scaling.py --repeats 5
	$(PY) benchmarks/data_pipeline.py --out results/bench/data_pipeline.json
	$(PY) benchmarks/encoders_vs_peers.py --repeats 3
	$(PY) benchmarks/whole_track.py
	$(PY) benchmarks/export_int8.py
	$(PY) benchmarks/param_counts.py
