# Orders entity source for Sesam. `make help` lists the targets.
# Variables can be overridden on the command line or from the environment.

PYTHON  ?= python3
VENV    ?= .venv
PORT    ?= 5000
DATABASE_URL ?= sqlite:///data/orders.sqlite3
PYTEST_ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv run test test-contract pull clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt service/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(STAMP) ## Create the virtual environment with every dependency

run: $(STAMP) ## Run the service on SQLite with the sample orders (http://127.0.0.1:$(PORT))
	HOST=127.0.0.1 PORT=$(PORT) DATABASE_URL=$(DATABASE_URL) LOAD_SAMPLE_ORDERS=true \
		$(BIN)/gunicorn -c service/gunicorn.conf.py

test: $(STAMP) ## Run the whole test suite (unit, API, store, gunicorn, contract)
	$(BIN)/pytest $(PYTEST_ARGS)

test-contract: $(STAMP) ## Run the contract suite against SERVICE_URL (and SERVICE_USER / SERVICE_PASSWORD)
	SERVICE_PASSWORD="$(SERVICE_PASSWORD)" $(BIN)/pytest tests/contract --service-url "$(SERVICE_URL)" \
		$(if $(SERVICE_USER),--service-user "$(SERVICE_USER)") $(PYTEST_ARGS)

pull: $(STAMP) ## Pull from the running service as a Sesam pipe would (state in .emulator-state.json)
	$(BIN)/python -m tests.sesam_emulator --url http://127.0.0.1:$(PORT)/api/orders $(ARGS)

clean: ## Remove the virtual environment, caches and local data
	rm -rf $(VENV) .pytest_cache .hypothesis data .emulator-state.json
