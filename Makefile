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
