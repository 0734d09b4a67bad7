# Everything a fresh machine needs comes from this repository's own files:
# Python packages from pyproject.toml, the claude CLI and opencode for the tests from
# tests/agents/package-lock.json, the claude CLI that `serve` falls back on from
# deploy/claude-code/package-lock.json, redis-server, postgresql and chromium from Debian.
VENV := .venv
BIN := $(VENV)/bin
AGENTS := tests/agents
CLAUDE_CODE := deploy/claude-code

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: serve test lint bench clean redis-server postgresql chromium screenshots

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(AGENTS)/node_modules/.installed: $(AGENTS)/package.json $(AGENTS)/package-lock.json
	# `npm install` with the committed lock installs the pinned versions; `npm ci` refuses
	# this lock because opencode-ai lists other platforms' binaries as optional deps.
	cd $(AGENTS) && npm install --no-audit --no-fund --ignore-scripts
	# Both packages are wrappers whose postinstall links the native binary (scripts are off).
	cd $(AGENTS) && node node_modules/@anthropic-ai/claude-code/install.cjs
	cd $(AGENTS)/node_modules/opencode-ai && node postinstall.mjs
	touch $@

$(CLAUDE_CODE)/node_modules/.installed: $(CLAUDE_CODE)/package.json $(CLAUDE_CODE)/package-lock.json
	cd $(CLAUDE_CODE) && npm install --no-audit --no-fund --ignore-scripts
	cd $(CLAUDE_CODE) && node node_modules/@anthropic-ai/claude-code/install.cjs
	touch $@

# Debian's redis-server, for the Redis backend's tests (they start their own instances).
redis-server:
	command -v redis-server >/dev/null || $(APT) install -y redis-server \
		|| ($(APT) update && $(APT) install -y redis-server)

# Debian's PostgreSQL server, for the PostgreSQL backend's tests (they start their own
# clusters in temporary folders, as the `postgres` user when run as root).
postgresql:
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || $(APT) install -y postgresql \
		|| ($(APT) update && $(APT) install -y postgresql)

# Debian's chromium, driven headless by Playwright in the console's tests.
chromium:
	command -v chromium >/dev/null || $(APT) install -y chromium \
		|| ($(APT) update && $(APT) install -y chromium)

# The pinned claude CLI comes last on PATH: a `claude` of your own (or
# AGENT_GATEWAY_CLAUDE_COMMAND) is used first.
serve: $(VENV)/.installed $(CLAUDE_CODE)/node_modules/.installed
	PATH="$$PATH:$(CURDIR)/$(CLAUDE_CODE)/node_modules/.bin" $(BIN)/agent-gateway serve

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(VENV)/.installed $(AGENTS)/node_modules/.installed redis-server postgresql chromium lint
	$(BIN)/pytest

# The README's pictures of the console, taken by its tests.
screenshots: $(VENV)/.installed $(AGENTS)/node_modules/.installed chromium
	CONSOLE_SCREENSHOTS_DIR=tests/e2e/screenshots $(BIN)/pytest -q tests/e2e/test_console.py

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/stream_bench.py

clean:
	rm -rf $(VENV) $(AGENTS)/node_modules $(CLAUDE_CODE)/node_modules
