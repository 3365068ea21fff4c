# The two commands a fresh machine needs:  make serve  |  make test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# MNIST for the tests: the project's shared copy when it is there, else the default cache
# (where `digits train` downloads it on a connected machine).
export DIGITS_DATA_DIR ?= $(abspath $(wildcard ../shared/data/mnist))
ifeq ($(strip $(DIGITS_DATA_DIR)),)
unexport DIGITS_DATA_DIR
endif

.PHONY: serve test check venv test-venv peers-venv system-deps images lint grpc-stubs clean

$(BIN)/digits: pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c .ci/constraints.txt -e .
	touch $@

venv: $(BIN)/digits

$(VENV)/.test-deps: $(BIN)/digits
	$(BIN)/pip install -q -c .ci/constraints.txt -e '.[test]'
	touch $@

test-venv: $(VENV)/.test-deps

## The benchmark's LitServe and BentoML peers live in a virtualenv of their own (pinned in
## bench/peers/requirements.txt; default ~/.cache/digits/peers-venv): made here once, so the tests don't.
peers-venv: venv
	$(BIN)/python -m bench.peers_venv

## Debian packages the tests drive for real: Java for TorchServe, Prometheus, headless Chromium, wrk (the
## benchmark's load generator), and the Docker engine, docker-compose and debootstrap for the deploy suite.
system-deps:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v dockerd >/dev/null || missing="$$missing docker.io"; \
	command -v debootstrap >/dev/null || missing="$$missing debootstrap"; \
	if [ -n "$$missing" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## Run the service on the shipped model, on CPU, at http://127.0.0.1:8000
serve: venv
	$(BIN)/digits serve

## Build every image (gateway, TorchServe on CPU torch, load balancer, Debian Prometheus); starts dockerd
## when none runs, makes the Debian base locally when it cannot be pulled. TORCH_VARIANT=cuda for GPU hosts.
images: system-deps
	deploy/images/build.sh

## Set everything up and run the whole test suite
test: system-deps test-venv peers-venv images
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q -p no:cacheprovider

## The fast tier: linters and every test that needs no Docker, Chromium, TorchServe, benchmark peers or
## cluster and is not marked slow (markers in pyproject.toml). Builds no image and makes no peers' venv.
FAST_TESTS := not (docker or browser or torchserve or bench or slow or kubernetes)
check: test-venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q -p no:cacheprovider -m "$(FAST_TESTS)"

lint: test-venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && $(BIN)/lint-imports

## The gRPC adapter's Python modules from the Open Inference Protocol's .proto (committed; tests/grpc checks them)
GRPC_GENERATED := service/grpc/generated
grpc-stubs: test-venv
	$(BIN)/python -m grpc_tools.protoc -I $(GRPC_GENERATED) --python_out=$(GRPC_GENERATED) \
		--pyi_out=$(GRPC_GENERATED) $(GRPC_GENERATED)/predict_v2.proto

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
