# Two set-up commands for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: demo test test-slow lint format bench clean

$(STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spizoo simulate configs/quickstart.yaml -n 64 --out $(DEMO_OUT)/simulate --overwrite
	$(VENV)/bin/spizoo generate configs/quickstart.yaml --out $(DEMO_OUT)/dataset --overwrite
	rm -rf $(DEMO_OUT)/run
	$(VENV)/bin/spizoo train configs/quickstart.yaml --data $(DEMO_OUT)/dataset --out $(DEMO_OUT)/run
	$(VENV)/bin/spizoo evaluate $(DEMO_OUT)/run --data '$(DEMO_OUT)/dataset/*-test.tfrecord-*' 

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) benchmarks/scattering_amplitude.py
	$(PY) benchmarks/sim_spi.py
	$(PY) benchmarks/sim_msft.py
	$(PY) benchmarks/input_pipeline.py
	$(PY) benchmarks/beam_generate.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info
