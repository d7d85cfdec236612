# vitkit course kit. Every target sets itself up: on a fresh clone, `make test` is the only command needed.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# nbgrader runs alembic and jupyter from PATH: the venv's bin/ goes first.
RUN := PATH="$(BIN):$$PATH" MPLBACKEND=Agg
# torch and torchvision as a matching pair; on the course machines pip takes them from local disk.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup test bench lab tutorial hub hub-deps clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH) -e ".[dev]"
	touch $@

# configurable-http-proxy (JupyterHub's proxy) from npm, into the venv. Without npm the hub test skips and says why.
PROXY := $(VENV)/node/bin/configurable-http-proxy

$(PROXY):
	@if command -v npm >/dev/null 2>&1; then npm install --global --silent --prefix $(VENV)/node configurable-http-proxy; \
	else echo "vitkit: no npm, so no configurable-http-proxy: the hub test will skip (apt-get install npm)"; fi

hub-deps: setup $(PROXY)

test: setup hub-deps
	$(BIN)/ruff check vitkit tests
	$(BIN)/ruff format --check vitkit tests
	$(RUN) $(BIN)/vitkit course release --check
	$(RUN) $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(RUN) $(BIN)/vitkit bench $(BENCH_ARGS)

# No MPLBACKEND=Agg here (figures must show in the browser) and no --notebook-dir (make runs in the course root).
lab: setup
	@echo "vitkit: JupyterLab in $(CURDIR). Open the http://...?token=... address printed below; Ctrl-C twice stops it."
	PATH="$(BIN):$$PATH" $(BIN)/jupyter lab --ServerApp.log_level=WARN $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

tutorial: setup
	$(RUN) $(BIN)/vitkit tutorial $(TUTORIAL_ARGS)

# A JupyterHub for a class on this machine (as root): local accounts, nbgrader's exchange, formgrader for the instructor.
hub: hub-deps
	$(RUN) $(BIN)/vitkit course hub $(HUB_ARGS)

clean:
	rm -rf build .pytest_cache
