# Set-up and the everyday commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The browser tests (tests/e2e) drive Debian's Chromium through its chromedriver.
BROWSER := /usr/bin/chromium /usr/bin/chromedriver
# ... and check each page's accessibility with axe-core (package.json, npm).
AXE     := node_modules/axe-core/axe.min.js
APT     := DEBIAN_FRONTEND=noninteractive apt-get -y -q

.PHONY: install browser demo test test-unit lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

# Installed only when missing; the package lists are refreshed only if the install fails
# without it (an image whose lists are current needs no network round for them).
$(BROWSER) &:
	$(APT) install chromium chromium-driver || \
		{ $(APT) update && $(APT) install chromium chromium-driver; }

$(AXE): package.json
	npm install --no-audit --no-fund --silent
	touch $(AXE)

browser: $(BROWSER) $(AXE)

demo: $(STAMP)
	$(BIN)/broadcaster demo

# The pipeline tests start real workers that share Redis (one of them restarts it): they
# run on their own, after the rest runs in parallel.
test: $(STAMP) browser
	$(BIN)/pytest -n 2 --ignore=tests/pipeline $(PYTEST_ARGS)
	$(BIN)/pytest tests/pipeline $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# The pipeline at city scale on PostgreSQL and Redis (see benchmarks/city.py): a million
# residents by default, BENCH_SUBSCRIBERS=100000 for a quicker run; BENCH_ARGS=--json.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.city $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) var node_modules .pytest_cache .mypy_cache .ruff_cache
