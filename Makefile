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

# Benchmarks (docs/benchmarks.md): each script prints a table and writes
# results/bench/<name>.json; they take minutes each on a 2-core CPU.
bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	for b in quantizer mixer_scaling encoders_vs_peers hardware_limit \
	         pretrain_throughput data_pipeline export_int8 param_counts; do \
	    $(PY) benchmarks/$$b.py || exit 1; done
