# pyroscope-lambda-extension: a Lambda extension relaying Pyroscope uploads.
# `make` lists the targets. Everything a fresh machine lacks is installed here.

SHELL := /bin/bash
.DEFAULT_GOAL := help

SWIFT      ?= swift
PYTHON     ?= python3
VENV       := .venv
VENV_PY    := $(VENV)/bin/python
BIN_DIR     = $(shell $(SWIFT) build --show-bin-path)
# Release builds (the layer's and make bench's, one build cache): direct metadata accessors
# for every module, dependencies included (layer/build.sh says why).
RELEASE_FLAGS := -Xswiftc -Xfrontend -Xswiftc -disable-concrete-type-metadata-mangled-name-accessors
RELEASE_DIR = $(shell $(SWIFT) build -c release $(RELEASE_FLAGS) --show-bin-path)
RELAY      := pyroscope-lambda-extension
PYROSCOPE_IO_VERSION := 1.4.0
AWSLAMBDARIC_VERSION := 4.2.2
PROTOBUF_VERSION := 5.29.3
# make observe draws with these: flame graphs with pyinferno (the inferno flame graph
# renderer; it needs pyinstrument; wheels only for CPython <= 3.11 on x86_64, elsewhere
# tools/flamegraph.py draws a plain SVG itself), the relay's figures with matplotlib;
# pytest runs the tools' tests.
PYINFERNO_VERSION := 0.2.6
PYINSTRUMENT_VERSION := 5.1.3
MATPLOTLIB_VERSION := 3.11.2
PYTEST_VERSION := 8.4.2
# moto (AWS Secrets Manager and SSM in server mode) and botocore (the SigV4 oracle).
MOTO_VERSION := 5.2.5
BOTOCORE_VERSION := 1.44.8
# OpenTelemetry's Python profiler (OTLP profiles over HTTP or gRPC) and its classes
# (opentelemetry-proto), the independent reader of the relay's OTLP label rewrite.
OTEL_PROFILING_VERSION := 0.63b4
OTEL_PROTO_VERSION := 1.40.0
PYINFERNO_WHEELS := platform_machine == 'x86_64' and python_version < '3.12'
VENV_PINS  := "pyroscope-io==$(PYROSCOPE_IO_VERSION)" "awslambdaric==$(AWSLAMBDARIC_VERSION)" "protobuf==$(PROTOBUF_VERSION)" \
	"pyinferno==$(PYINFERNO_VERSION); $(PYINFERNO_WHEELS)" "pyinstrument==$(PYINSTRUMENT_VERSION); $(PYINFERNO_WHEELS)" \
	"matplotlib==$(MATPLOTLIB_VERSION)" "pytest==$(PYTEST_VERSION)" \
	"moto[server]==$(MOTO_VERSION)" "boto3==$(BOTOCORE_VERSION)" "botocore==$(BOTOCORE_VERSION)" \
	"opentelemetry-sdk-extension-profiling==$(OTEL_PROFILING_VERSION)" "opentelemetry-proto==$(OTEL_PROTO_VERSION)"
# The stamp names the pinned versions, so a change installs again.
VENV_STAMP := $(VENV)/.installed-$(PYROSCOPE_IO_VERSION)-$(AWSLAMBDARIC_VERSION)-$(PROTOBUF_VERSION)-$(PYINFERNO_VERSION)-$(MATPLOTLIB_VERSION)-$(PYTEST_VERSION)-$(MOTO_VERSION)-$(BOTOCORE_VERSION)-$(OTEL_PROFILING_VERSION)-$(OTEL_PROTO_VERSION)
# The layer: its architectures (ARCH: one, or both space-separated), and what make
# publish-layer publishes where: one layer per architecture, named LAYER_NAME-ARCH.
ARCH       ?= x86_64
ARCHS      := x86_64 arm64
LAYER_NAME ?= pyroscope-lambda-extension
REGIONS    ?= us-east-1
LAYER_VENV := .venv-layer
LAYER_PY   := $(LAYER_VENV)/bin/python
# arm64 on an x86_64 machine: the binary runs under qemu-aarch64 in the tests.
NEEDS_QEMU := $(and $(filter arm64,$(ARCH)),$(filter x86_64,$(shell uname -m)))

# Prometheus and promtool, Debian's package unpacked here (no service enabled).
TOOLS_DIR  := .build-tools
PROMETHEUS := $(TOOLS_DIR)/prometheus/usr/bin/prometheus
PROMTOOL   := $(TOOLS_DIR)/prometheus/usr/bin/promtool
OBSERVE_SECONDS ?= 60
# make lambda-local: Lambda's execution model to emulate, and the function's profiler
# (pyroscope: pyroscope-io's push; otel: OpenTelemetry's, OTLP profiles).
MODE       ?= on-demand
PROFILER   ?= pyroscope
# Python: the tests' peers (Tests/Peers), the tools and the local Lambda (tools/), the
# benchmarks (Benchmarks/), the layer's scripts and tests, the example function.
PY_SOURCES := Tests/Peers/*.py tools/*.py tools/tests/*.py tools/local-lambda/*.py tools/local-lambda/local_lambda/*.py \
	tools/local-lambda/lambda_function/*.py tools/local-lambda/tests/*.py \
	Benchmarks/*.py layer/*.py layer/toolchain/clang layer/tests/*.py examples/python-function/*.py
# The pytest suites make test runs after the Swift tests.
PYTEST_DIRS := tools/tests tools/local-lambda/tests
# make demo, make observe and make lambda-local build the relay first, unless RELAY_BINARY names a built one
# (make test passes its own build to the tools' tests, which run both targets).
RELAY_TO_RUN = $(or $(RELAY_BINARY),$(BIN_DIR)/$(RELAY))
BUILD_RELAY  = $(if $(RELAY_BINARY),,$(SWIFT) build --product $(RELAY))

.PHONY: help build test fuzz run demo observe lambda-local lint bench bench-cost bench-freeze bench-ladder clean venv tools layer layers layer-tools layer-runner \
	publish-layer publish-layers test-layer test-layers test-compat

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

build: ## Debug build of the extension and its tests
	$(SWIFT) build --build-tests

# The Python peers the tests and the demo run: the real pyroscope-io client, AWS's
# runtime client, Google's protobuf (the independent pprof decoder), moto (AWS APIs) and
# botocore (the SigV4 oracle).
$(VENV_STAMP):
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(VENV_PY) -m pip install -q $(VENV_PINS)
	@touch $@

venv: $(VENV_STAMP) ## Python venv with pyroscope-io, OpenTelemetry's profiler and opentelemetry-proto, awslambdaric, protobuf, pyinferno, matplotlib, pytest, moto, botocore (used by test, demo, observe, lambda-local)

# Debian tools the tests run as real peers: prometheus and promtool. `apt-get install
# prometheus` would also enable and start a system service where systemd runs, so the
# package is only downloaded and unpacked into $(TOOLS_DIR) (its maintainer scripts never
# run: no user, no unit, nothing started). Not pinned to a Debian revision: the archive
# keeps only the current one of a stable release.
$(PROMETHEUS):
	@rm -rf $(TOOLS_DIR)/debs $(TOOLS_DIR)/prometheus && mkdir -p $(TOOLS_DIR)/debs
	@cd $(TOOLS_DIR)/debs && { apt-get download -qq prometheus 2>/dev/null || { apt-get update -qq && apt-get download -qq prometheus; }; }
	dpkg-deb -x $(TOOLS_DIR)/debs/prometheus_*.deb $(TOOLS_DIR)/prometheus
	@$(PROMETHEUS) --version | head -1

# nginx (a TLS server with basic auth and HTTP/2), tinyproxy (an HTTP proxy) and openssl
# (test certificates) from Debian; the tests start their own on loopback.
tools: $(PROMETHEUS) ## Prometheus and promtool unpacked into .build-tools/ (no service enabled); nginx, tinyproxy, openssl, iptables (the local Lambda's network freeze)
	@{ command -v openssl && [ -x /usr/sbin/nginx ] && [ -x /usr/bin/tinyproxy ] && [ -x /usr/sbin/iptables ]; } >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light tinyproxy openssl iptables; }

test: venv tools build ## Build and run every test (Swift Testing, then pytest for tools/ and tools/local-lambda/), with the real Python client, Prometheus, moto, nginx and tinyproxy as peers
	RELAY_BINARY="$(BIN_DIR)/$(RELAY)" PYROSCOPE_TEST_PYTHON="$(abspath $(VENV_PY))" \
		PROMETHEUS="$(abspath $(PROMETHEUS))" PROMTOOL="$(abspath $(PROMTOOL))" \
		$(SWIFT) test --skip-build
	RELAY_BINARY="$(BIN_DIR)/$(RELAY)" PROMETHEUS="$(abspath $(PROMETHEUS))" $(VENV_PY) -m pytest -q $(PYTEST_DIRS)

# make test runs the ingress property test for its default 4 s; this runs it longer.
FUZZ_SECONDS ?= 300
fuzz: build ## The ingress property test (random and mutated requests through the real ingress) for FUZZ_SECONDS (300); FUZZ_SEED replays a run
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(SWIFT) test --skip-build --filter IngressFuzzTests

run: ## Dev-mode relay on localhost:4040: to PYROSCOPE_REMOTE_ADDRESS, or a local capture server when unset
	$(SWIFT) build --product $(RELAY)
	@tools/run.sh "$(BIN_DIR)/$(RELAY)"

demo: venv ## The main job end to end: a real profiled Python process -> relay -> a local stand-in Pyroscope; ends with OK or FAIL
	$(BUILD_RELAY)
	@tools/demo.sh "$(RELAY_TO_RUN)" "$(VENV_PY)"

observe: venv tools ## Relay + Prometheus + profiled workload for OBSERVE_SECONDS (0: until Ctrl-C); leaves flame graphs and a metrics PNG
	$(BUILD_RELAY)
	@$(VENV_PY) tools/observe.py --relay "$(RELAY_TO_RUN)" --prometheus "$(PROMETHEUS)" --seconds "$(OBSERVE_SECONDS)"

lambda-local: venv ## A local Lambda (MODE=on-demand|provisioned-concurrency|snap-start|lambda-managed-instances, MEMORY=128: Lambda's CPU quota and memory limit for that size, PROFILER=otel: OpenTelemetry's profiler, OTLP) running the extension and a profiled Python function; ends with OK or FAIL
	$(BUILD_RELAY)
	@MODE="$(MODE)" MEMORY="$(MEMORY)" PROFILER="$(PROFILER)" tools/local-lambda/lambda_local.sh "$(RELAY_TO_RUN)" "$(VENV_PY)"

lint: ## swift format lint --strict (config: .swift-format) and Python syntax
	$(SWIFT) format lint --strict --recursive Sources Tests Benchmarks Package.swift
	$(PYTHON) -m py_compile $(PY_SOURCES)
	for script in layer/build.sh layer/publish.sh layer/cross/*.sh tools/*.sh tools/local-lambda/*.sh; do bash -n "$$script" || exit 1; done

# make bench and make bench-cost: the layer binary whose cost to the function is measured
# (make layer builds it), and BENCH_PEER, another extension binary measured in turns with it
# (the Go extension built beside the project, say: CONTRIBUTING.md "What it costs the function").
LAYER_BINARY := dist/x86_64/extensions/$(RELAY)
LAYER_ZIP    := dist/$(RELAY)-x86_64.zip
BENCH_PEER   ?=
BENCH_TOOLS   = @command -v wrk >/dev/null && command -v nginx >/dev/null && command -v curl >/dev/null && command -v cc >/dev/null && command -v zip >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light curl gcc zip; }
STARTUP_BIN  := Benchmarks/results/.bin/startup
STANDIN_BIN  := Benchmarks/results/.bin/standin_runtime
# make bench-cost's CPU-share mode: the memory sizes whose Lambda CPU quota it emulates (a cgroup).
BENCH_MEMORY ?= $(or $(MEMORY),128 512 1769)
COST_ARGS     = --layer-binary $(LAYER_BINARY) --layer-zip $(LAYER_ZIP) $(if $(BENCH_PEER),--peer "$(BENCH_PEER)")

$(STARTUP_BIN): Benchmarks/startup.c Benchmarks/lambda_life.c
	@mkdir -p $(dir $@) && cc -O2 -Wall -o $@ Benchmarks/startup.c Benchmarks/lambda_life.c

$(STANDIN_BIN): Benchmarks/standin_runtime.c
	@mkdir -p $(dir $@) && cc -O2 -Wall -o $@ Benchmarks/standin_runtime.c

bench: venv ## Relay vs nginx, A B A B: ack latency, delivered rate, memory, start-up, CPU, LogBench, self-profiling overhead, log bytes per refused upload; the layer binary's cost to the function, in turns with BENCH_PEER (BENCH_QUICK=1: one short round)
	$(BENCH_TOOLS)
	@$(VENV_PY) -c 'import matplotlib' 2>/dev/null || $(VENV_PY) -m pip install -q matplotlib
	@$(MAKE) --no-print-directory layer ARCH=x86_64
	@$(MAKE) --no-print-directory $(STARTUP_BIN)
	$(SWIFT) build -c release $(RELEASE_FLAGS) --product $(RELAY)
	$(SWIFT) build -c release $(RELEASE_FLAGS) --product LogBench
	$(SWIFT) build -c release $(RELEASE_FLAGS) --product PipelineBench
	$(VENV_PY) Benchmarks/run_bench.py --relay "$(RELEASE_DIR)/$(RELAY)" --logbench "$(RELEASE_DIR)/LogBench" \
		--pipelinebench "$(RELEASE_DIR)/PipelineBench" \
		--startup-bin $(STARTUP_BIN) $(COST_ARGS)

bench-cost: venv ## The layer binary's cost to the function (init, idle memory, CPU of a life and per upload, uploads/s, sizes), then at Lambda's CPU share for each MEMORY size (a cgroup; added init, first upload over HTTPS, cold request), in turns with BENCH_PEER
	$(BENCH_TOOLS)
	@command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }
	@$(MAKE) --no-print-directory layer ARCH=x86_64
	@$(MAKE) --no-print-directory $(STARTUP_BIN) $(STANDIN_BIN)
	$(VENV_PY) Benchmarks/extension_cost.py --binary $(LAYER_BINARY) --zip $(LAYER_ZIP) $(if $(BENCH_PEER),--peer "$(BENCH_PEER)") \
		--startup-bin $(STARTUP_BIN) --runtime-bin $(STANDIN_BIN) --memory "$(BENCH_MEMORY)" $(if $(BENCH_CPU_SHARE_ONLY),--only-cpu-share)

# make bench-ladder: the floor of each layer of the stack, probes that only register and wait
# for SHUTDOWN (Benchmarks/ladder/, a package of its own), in turns with BENCH_PEER; LADDER_BINARY
# adds a built layer binary as the last row. The probes link as the layer does (a static
# executable); builds run niced, the measurement not.
LADDER_BINARY ?=
LADDER_TOOLS  = @command -v cc >/dev/null && command -v strip >/dev/null && command -v zip >/dev/null && [ -f "$$(gcc -print-file-name=libc.a)" ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc binutils libc6-dev zip; }
bench-freeze: venv tools ## What a freeze that stops the network does to uploads in flight: stored once, twice, lost, delay, billed post-runtime time, per strategy and function shape, in a local Lambda (root: a network namespace and iptables), beside BENCH_PEER
	$(BUILD_RELAY)
	tools/local-lambda/lambda_sandbox.sh $(VENV_PY) Benchmarks/freeze.py --binary "$(RELAY_TO_RUN)" --python "$(abspath $(VENV_PY))" $(if $(BENCH_PEER),--peer "$(BENCH_PEER)")

bench-ladder: ## The floor ladder: C, Swift, NIO, NIOSSL and log/metrics/lifecycle probes (register, first /event/next, RSS, CPU, size), in turns with BENCH_PEER; LADDER_BINARY=path adds the layer binary
	$(LADDER_TOOLS)
	$(PYTHON) Benchmarks/ladder.py --layer-link $(if $(BENCH_PEER),--peer "$(BENCH_PEER)") \
		$(if $(LADDER_BINARY),--binary "$(LADDER_BINARY)")

# What building, publishing and testing the layer needs: the AWS CLI, the moto AWS emulator,
# cfn-lint and pytest in their own venv; libc.a (libc6-dev), libstdc++.a (g++), libz.a
# (zlib1g-dev), debootstrap and advzip (advancecomp: the zip recompressed) from Debian.
$(LAYER_VENV)/.installed:
	@$(PYTHON) -m venv $(LAYER_VENV) 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(LAYER_VENV); }
	$(LAYER_PY) -m pip install -q "awscli==1.46.3" "moto[server]==5.2.5" "cfn-lint==1.58.0" "pytest==8.4.2"
	@touch $@

layer-tools: $(LAYER_VENV)/.installed
	@{ [ -f "$$(gcc -print-file-name=libc.a)" ] && [ -f "$$(gcc -print-file-name=libstdc++.a)" ] && [ -f "$$(gcc -print-file-name=libz.a)" ] && command -v zip >/dev/null && command -v unzip >/dev/null && command -v debootstrap >/dev/null && command -v advzip >/dev/null; } || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libc6-dev g++ zlib1g-dev zip unzip debootstrap advancecomp; }

layer: layer-tools ## Layer zip dist/pyroscope-lambda-extension-ARCH.zip (ARCH=x86_64|arm64|"x86_64 arm64"): a static executable
	@for arch in $(ARCH); do SWIFT_RELEASE_FLAGS="$(RELEASE_FLAGS)" layer/build.sh $$arch $(abspath $(LAYER_PY)) || exit 1; done

layers: ## Both layer zips (x86_64, and arm64 cross-built in a Debian sid root on x86_64; cached in .build-cross/)
	@$(MAKE) --no-print-directory layer ARCH="$(ARCHS)"

# qemu-aarch64 and an arm64 glibc root, for running the arm64 binary on x86_64.
layer-runner:
	@$(if $(NEEDS_QEMU),layer/cross/setup.sh runner,true)

publish-layer: layer-tools ## aws lambda publish-layer-version per ARCH: LAYER_NAME (published as LAYER_NAME-ARCH), REGIONS="a b", PUBLIC=1, DRY_RUN=1
	@for arch in $(ARCH); do [ -f dist/$(RELAY)-$$arch.zip ] || \
		{ echo "error: dist/$(RELAY)-$$arch.zip not found: run make layer ARCH=$$arch first (nothing published)" >&2; exit 1; }; done
	@for arch in $(ARCH); do \
		PATH="$(abspath $(LAYER_VENV))/bin:$$PATH" LAYER_NAME="$(LAYER_NAME)-$$arch" REGIONS="$(REGIONS)" ARCH="$$arch" \
			PUBLIC="$(PUBLIC)" DRY_RUN="$(DRY_RUN)" layer/publish.sh dist/$(RELAY)-$$arch.zip || exit 1; \
	done

publish-layers: ## publish-layer for both architectures (the zips of make layers)
	@$(MAKE) --no-print-directory publish-layer ARCH="$(ARCHS)"

# As Lambda runs it: the extension as its unprivileged user with the layer read-only, the
# whole session in a network namespace and a /tmp of its own (tools/local-lambda/lambda_sandbox.sh).
test-layer: venv layer layer-runner ## Layer tests per ARCH: zip layout and start-up (arm64: under qemu), self-profiling, publishing (dry run, moto), example (cfn-lint, local Lambda); as Lambda's user, in a network of their own
	LAYER_ARCH="$(ARCH)" PYROSCOPE_TEST_PYTHON="$(abspath $(VENV_PY))" tools/local-lambda/lambda_sandbox.sh $(LAYER_PY) -m pytest -q layer/tests --ignore=layer/tests/test_compat.py

test-layers: ## test-layer for both architectures
	@$(MAKE) --no-print-directory test-layer ARCH="$(ARCHS)"

test-compat: layer layer-runner ## The layer binary on Debian bullseye's glibc 2.31 per ARCH: x86_64 in a chroot (debootstrap, cached in .build-compat/), arm64 under qemu
	LAYER_ARCH="$(ARCH)" $(LAYER_PY) -m pytest -q layer/tests/test_compat.py

clean: ## Remove build products and the venvs
	rm -rf .build .build-* $(VENV) $(LAYER_VENV) dist
