# Two set-up commands for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out
DEMO_REST_PORT ?= 8501
DEMO_GRPC_PORT ?= 8500

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
	rm -rf $(DEMO_OUT)/models
	$(VENV)/bin/spizoo export $(DEMO_OUT)/run --name hits --base-path $(DEMO_OUT)/models
	@echo "serving $(DEMO_OUT)/models on REST port $(DEMO_REST_PORT) and gRPC port $(DEMO_GRPC_PORT)"
	@$(VENV)/bin/spizoo serve --model-config-file $(DEMO_OUT)/models/models.config \
	    --rest-api-port $(DEMO_REST_PORT) --port $(DEMO_GRPC_PORT) > $(DEMO_OUT)/serve.log 2>&1 & pid=$$!; \
	  for i in $$(seq 240); do grep -q "spizoo serve:" $(DEMO_OUT)/serve.log && break; sleep 0.5; done; \
	  $(VENV)/bin/spizoo predict $(DEMO_OUT)/simulate/patterns.cxi --server http://127.0.0.1:$(DEMO_REST_PORT) \
	    --model hits --out $(DEMO_OUT)/predictions_rest.csv; rest=$$?; \
	  $(VENV)/bin/spizoo predict $(DEMO_OUT)/simulate/patterns.cxi --server grpc://127.0.0.1:$(DEMO_GRPC_PORT) \
	    --model hits --out $(DEMO_OUT)/predictions_grpc.csv; grpc=$$?; \
	  kill $$pid; wait $$pid; \
	  cmp -s $(DEMO_OUT)/predictions_rest.csv $(DEMO_OUT)/predictions_grpc.csv && echo "REST and gRPC predictions agree"; \
	  test $$rest -eq 0 -a $$grpc -eq 0
	@echo "outputs: $(DEMO_OUT)/simulate (CXI + contact sheet), $(DEMO_OUT)/dataset (TFRecords), $(DEMO_OUT)/run"
	@echo "  (model, evaluation/ report and plots), $(DEMO_OUT)/models (SavedModel + models.config),"
	@echo "  $(DEMO_OUT)/predictions_{rest,grpc}.csv, server log $(DEMO_OUT)/serve.log"

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
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/inference.py
	$(PY) benchmarks/serving.py
	$(PY) benchmarks/classify.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info
