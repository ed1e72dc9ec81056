# The documented way in: `make demo` runs the main job end to end, `make test` the test suite.
# Each does its own set-up: the virtualenv, the packages, a database server binary, generated code.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv v2-venv db-server proto proto-check lint demo test test-unit bench bench-protocols bench-serving bench-fairness bench-dataset quality clean distclean

all: test

venv: $(STAMP)

$(STAMP): client/pyproject.toml server/pyproject.toml constraints.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e client -e server -r requirements-dev.txt
	touch $@

# tritonclient[grpc] and MLServer (the Open Inference Protocol's client and a server of it) need
# protobuf < 7, the project's generated modules 7: they get a venv of their own, which the tests
# run as subprocesses (tests/v2_venv.py).
V2_VENV ?= .venv-v2
V2_STAMP := $(V2_VENV)/.installed

v2-venv: $(V2_STAMP)

$(V2_STAMP): requirements-v2.txt
	test -x $(V2_VENV)/bin/python || $(PYTHON) -m venv $(V2_VENV)
	$(V2_VENV)/bin/python -m pip install -q --upgrade pip
	$(V2_VENV)/bin/python -m pip install -q -r requirements-v2.txt
	touch $@

# The private database (mlbridge db local) runs the machine's own mariadbd/mysqld.
db-server:
	@bash tools/ensure-db-server.sh

# Regenerate the wire modules from proto/ (committed); proto-check fails when they drift.
proto: venv
	PYTHON=$(BIN)/python bash tools/gen_proto.sh

proto-check: venv
	PYTHON=$(BIN)/python bash tools/gen_proto.sh --check

lint: venv
	$(BIN)/ruff check .

demo: venv db-server
	PATH="$(CURDIR)/$(BIN):$$PATH" bash tools/demo.sh

test: venv v2-venv db-server proto-check lint
	$(BIN)/python -m pytest tests

test-unit: venv
	$(BIN)/python -m pytest tests/unit

clean:
	rm -rf .pytest_cache build dist .run/demo
	find . -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(V2_VENV) .run models

# Benchmarks (not part of make test; a small smoke of each runs in the suite): mlbridge beside
# the direct program and the tutorial pipeline, on one private server, in one run; then the model
# server beside the in-process call, and its two protocols side by side.
BENCH_ROWS ?= 1000000
BENCH_BRIDGES ?= 1
bench: venv v2-venv db-server
	$(BIN)/python bench/bench.py --rows $(BENCH_ROWS) --bridges $(BENCH_BRIDGES)
	$(BIN)/python bench/serving.py $(SERVING_ARGS)
	$(BIN)/python bench/protocols.py

# The model server beside the in-process call: gRPC's added latency at batch 1,024, rows/s with 4
# clients, single-row latency, 8 single-row clients with batching on and off (bench/serving.py).
# SERVING_ARGS passes flags on, e.g. SERVING_ARGS="--model DIR" or "--protocol v2".
SERVING_ARGS ?=
bench-serving: venv db-server
	$(BIN)/python bench/serving.py $(SERVING_ARGS)

# The model server's two protocols (TF Serving's Predict, the Open Inference Protocol's ModelInfer):
# single-row latency, median and p99, and a 1,024-row batch beside the in-process call.
bench-protocols: venv v2-venv
	$(BIN)/python bench/protocols.py

# One account's huge request beside another account's small call (fair claiming, per-account limits).
FAIRNESS_ROWS ?= 1000000
bench-fairness: venv db-server
	$(BIN)/python bench/fairness.py --rows $(FAIRNESS_ROWS)

# The trainer's tf.data Dataset over a 10M-row table: memory and rows/s by number of readers.
DATASET_ROWS ?= 10000000
bench-dataset: venv db-server
	$(BIN)/python bench/dataset.py --rows $(DATASET_ROWS)

# Model quality (not part of make test): the trainer beside scikit-learn baselines, paired 5x2-fold
# cross-validation on data sets that packages ship, loaded into a private server. QUALITY_ARGS
# passes flags on, e.g. QUALITY_ARGS="--quick" or QUALITY_ARGS="--sets wine,wage --model-type gbt".
# The full run takes about 80 minutes on 2 cores, 70 of them the 1M-row synthetic set.
# ISLP goes in without its dependencies, which would pull in torch.
QUALITY_ARGS ?=
quality: venv db-server
	$(BIN)/python -m pip install -q --no-deps ISLP==0.6.0
	$(BIN)/python bench/quality.py $(QUALITY_ARGS)
