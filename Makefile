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

.PHONY: serve test check venv test-venv peers-venv system-deps kubernetes-deps kubernetes test-kubernetes images lint grpc-stubs clean

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

## The `kubernetes` test tier's cluster (tests/kubernetes): Kubernetes v1.20.2 built from Debian bookworm's
## `kubernetes` source package with Go 1.19, etcd, and a dockerd of its own. Adds a deb-src line for the source.
kubernetes-deps:
	@missing=""; \
	[ -x /usr/lib/go-1.19/bin/go ] || missing="$$missing golang-1.19-go"; \
	command -v etcd >/dev/null || missing="$$missing etcd-server"; \
	command -v dockerd >/dev/null || missing="$$missing docker.io"; \
	command -v rsync >/dev/null || missing="$$missing rsync"; \
	command -v gcc >/dev/null || missing="$$missing gcc libc6-dev"; \
	command -v dpkg-source >/dev/null || missing="$$missing dpkg-dev"; \
	command -v conntrack >/dev/null || missing="$$missing conntrack"; \
	command -v iptables >/dev/null || missing="$$missing iptables"; \
	command -v nsenter >/dev/null || missing="$$missing util-linux"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v patch >/dev/null || missing="$$missing patch"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes'; then \
		if [ -f /etc/apt/sources.list.d/debian.sources ]; then \
			sed -e 's/^Types: deb$$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources | \
				$$SUDO tee /etc/apt/sources.list.d/digits-deb-src.sources >/dev/null; \
		else \
			sed -n 's/^deb /deb-src /p' /etc/apt/sources.list | \
				$$SUDO tee /etc/apt/sources.list.d/digits-deb-src.list >/dev/null; \
		fi; \
		$$SUDO apt-get update -qq; \
	fi; \
	if [ -n "$$missing" ]; then \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## Build the cluster's binaries once into ~/.cache/digits/kubernetes-1.20.2-<Debian version>-r<revision>/ (cold: minutes)
kubernetes: kubernetes-deps
	tests/kubernetes/build_binaries.sh

## Run the service on the shipped model, on CPU, at http://127.0.0.1:8000
serve: venv
	$(BIN)/digits serve

## Build every image (gateway, TorchServe on CPU torch, load balancer, Debian Prometheus); starts dockerd
## when none runs, makes the Debian base locally when it cannot be pulled. TORCH_VARIANT=cuda for GPU hosts.
images: system-deps
	deploy/images/build.sh

## Set everything up and run the whole test suite. The Kubernetes tier runs in a pytest of its own after the
## rest, so that its cluster (started once, for that session) is not running under the other tests.
test: system-deps test-venv peers-venv images kubernetes
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q -p no:cacheprovider -m "not kubernetes"
	$(BIN)/pytest -q -p no:cacheprovider -m kubernetes

## The Kubernetes tier on its own (a real one-node v1.20.2 cluster; docs/kubernetes.md)
test-kubernetes: system-deps test-venv images kubernetes
	$(BIN)/pytest -q -p no:cacheprovider -m kubernetes

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
