# Orders entity source for Sesam. `make help` lists the targets.
# Every variable below can be overridden on the command line or from the environment.

PYTHON  ?= python3
VENV    ?= .venv
# The port the service listens on here: `make run PORT=5101` (or run-image) remembers it
# in .service-port, so pull, push-entities and check-source find the service there too.
PORT_FILE := .service-port
PORT    ?= $(shell cat $(PORT_FILE) 2>/dev/null || echo 5000)
DATABASE_URL ?= sqlite:///data/orders.sqlite3
PYTEST_ARGS ?=
# The image: registry/name and tag. TAG comes from git; a dirty tree gives "-dirty".
IMAGE   ?= ghcr.io/sesam-community/orders-sesam-source
TAG     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
DOCKER  ?= docker
DOCKER_BUILD_FLAGS ?=
ALLOW_DIRTY ?= 0

BIN := $(VENV)/bin
# Two stamps: running the service needs only its runtime; the tests, the tools and lint
# need the rest (pytest, ruff, mypy, ...), installed by the first target that needs them.
SERVICE_STAMP := $(VENV)/.service-installed
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv run run-image sesam-install test test-fast lint bench-limits check-source test-image pull push-entities build push image-name check-engine check-clean sesam-env sesam-config bench clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(SERVICE_STAMP): service/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r service/requirements.txt
	touch $@

$(STAMP): $(SERVICE_STAMP) requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(STAMP) ## Create the virtual environment with every dependency

run: $(SERVICE_STAMP) ## Run the service on SQLite with the sample orders, open, on 127.0.0.1 (PORT=5000)
	@echo $(PORT) > $(PORT_FILE)
	@echo "the service on http://127.0.0.1:$(PORT) (DATABASE_URL as set; Ctrl-C stops it)"
	@HOST=127.0.0.1 PORT=$(PORT) DATABASE_URL='$(DATABASE_URL)' LOAD_SAMPLE_ORDERS=true ALLOW_UNAUTHENTICATED=true \
		exec $(BIN)/python -m service serve

test: $(STAMP) ## Run the test suite (unit, store, API, gunicorn, contract, properties)
	$(BIN)/pytest --ignore=tests/image $(PYTEST_ARGS)

test-fast: $(STAMP) ## Run the fast tests only: units and stores in process, no server (seconds)
	$(BIN)/pytest tests/unit tests/store -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP) ## Lint (ruff's default rules) and type-check (mypy) the service and the test helpers
	$(BIN)/ruff check --isolated --ignore I001,N999 service tests
	$(BIN)/mypy --ignore-missing-imports service tests/support tests/sesam_emulator tests/sesam_config \
		tests/source_checker

# The tools talk to this service (on PORT, with AUTH_USERNAME/AUTH_PASSWORD) unless given a
# URL (then URL_USER/URL_PASSWORD): tests/support/credentials.py.
check-source: $(SERVICE_STAMP) ## Check a Sesam JSON source: this service, or URL=... (ARGS="--strict", "--no-paging")
	@PORT=$(PORT) $(BIN)/python -m tests.source_checker $(if $(URL),'$(URL)') $(ARGS)

pull: $(SERVICE_STAMP) ## Pull from the service as a Sesam pipe would (ARGS="--show", "--full", ...)
	@PORT=$(PORT) $(BIN)/python -m tests.sesam_emulator $(ARGS)

push-entities: $(SERVICE_STAMP) ## Push a JSON file of entities as a Sesam json sink would (FILE=..., ARGS="--full")
	@test -n "$(FILE)" || { echo "usage: make push-entities FILE=entities.json [ARGS=--full]" >&2; exit 2; }
	@PORT=$(PORT) $(BIN)/python -m tests.sesam_emulator push "$(FILE)" $(ARGS)

run-image: $(SERVICE_STAMP) build ## Build the image and run it as the node would: its environment, 128 MB, a quarter core (PROFILE=test)
	@echo $(PORT) > $(PORT_FILE)
	@PORT=$(PORT) DOCKER=$(DOCKER) $(BIN)/python -m tests.sesam_config.run_image --image $(IMAGE):$(TAG) \
		--profile $(or $(PROFILE),test) $(RUN_IMAGE_ARGS)

sesam-install: $(SERVICE_STAMP) ## Add the system, pipes and variables to your node's config folder (INTO=..., PROFILE=prod|test)
	@test -n "$(INTO)" -a -n "$(PROFILE)" || { echo "usage: make sesam-install INTO=<your node's config folder> PROFILE=prod|test [IMAGE=...]" >&2; exit 2; }
	@$(BIN)/python -m tests.sesam_config.install --into '$(INTO)' --profile $(PROFILE) --image $(IMAGE):$(TAG)

image-name: ## Print the image reference that build/push use
	@echo $(IMAGE):$(TAG)

sesam-env: $(SERVICE_STAMP) ## Print this service's node variables as JSON, with the image (PROFILE=prod|test)
	@$(BIN)/python -m tests.sesam_config.install --print-variables --profile $(or $(PROFILE),prod) --image $(IMAGE):$(TAG)

sesam-config: $(STAMP) ## Regenerate the parts of sesam-config/ that come from the code
	$(BIN)/python -m tests.sesam_config

check-engine:
	@$(DOCKER) info >/dev/null 2>&1 || { echo "error: no container engine answers to '$(DOCKER)'" \
		"(start Docker, set DOCKER_HOST, or use DOCKER=podman)" >&2; exit 1; }

build: check-engine ## Build the image (IMAGE, TAG: make image-name) from the Dockerfile
	$(DOCKER) build $(DOCKER_BUILD_FLAGS) -t $(IMAGE):$(TAG) .

check-clean:
	@case "$(TAG)" in *-dirty) if [ "$(ALLOW_DIRTY)" != 1 ]; then \
		echo "error: the tree has uncommitted changes (TAG=$(TAG)); commit, or set ALLOW_DIRTY=1" >&2; \
		exit 1; fi;; esac

push: check-clean check-engine test ## Test, build and push the image (IMAGE=registry/name; a dirty tree needs ALLOW_DIRTY=1)
	$(MAKE) --no-print-directory build
	@$(DOCKER) push $(IMAGE):$(TAG) || { echo "error: the registry refused $(IMAGE):$(TAG)" \
		"(log in with '$(DOCKER) login', or check IMAGE)" >&2; exit 1; }
	@echo "pushed $(IMAGE):$(TAG); next: make sesam-install IMAGE=$(IMAGE) INTO=<your node config> PROFILE=prod"

test-image: $(STAMP) check-engine ## Build the image and test it for real (needs a Docker engine; REGISTRY for the push)
	$(BIN)/pytest tests/image $(PYTEST_ARGS)

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) tests/bench/requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r tests/bench/requirements.txt
	touch $@

bench: $(BENCH_STAMP) ## Benchmark service vs peer, floor and nginx (BENCH_ARGS="--orders 1000000", "--quick")
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

bench-limits: $(STAMP) ## The service at Sesam's limits (128 MB, 0.25 CPU) under load; root (BENCH_ARGS="--backend postgresql")
	$(BIN)/python -m tests.bench.sesam_limits $(BENCH_ARGS)

clean: ## Remove the virtual environment, caches and local data
	rm -rf $(VENV) .pytest_cache .hypothesis data .emulator-state.json $(PORT_FILE)
