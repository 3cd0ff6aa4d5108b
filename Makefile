# The few commands a newcomer needs. Every target installs what it uses first
# (idempotent and cheap when nothing changed), so each works on a fresh machine.
SHELL := /bin/bash
PYTHON_SYS := $(shell python3 -c 'import sys; print(sys.executable)')
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum uv.lock pyproject.toml | sha256sum | cut -c1-16)
FLOWS := $(wildcard flows/*.yaml)

.PHONY: setup system-deps demo test test-quick lint bench diagrams testgen clean

setup: system-deps $(STAMP)

# Graphviz's `dot` renders the diagrams. Skipped when already installed.
system-deps:
	@dpkg -s graphviz >/dev/null 2>&1 || { \
	  echo "installing Debian packages: graphviz"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; }

$(STAMP): uv.lock pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
	uv sync --frozen -q -p "$(PYTHON_SYS)"
	@rm -f $(VENV)/.installed-*; touch $@

# The main job: validate every shipped flow and draw it into diagrams/.
demo: setup
	$(BIN)/flowengine validate $(FLOWS)
	@for f in $(FLOWS); do $(BIN)/flowengine diagram $$f --format svg -o diagrams/$$(basename $$f .yaml).svg; done
	$(BIN)/flowengine paths flows/deposit.yaml

diagrams: setup
	@for f in $(FLOWS); do $(BIN)/flowengine diagram $$f --format svg -o diagrams/$$(basename $$f .yaml).svg; \
	  $(BIN)/flowengine diagram $$f --format dot -o diagrams/$$(basename $$f .yaml).dot; done

# Regenerate tests/generated/ from flows/ (a test fails when they are stale).
testgen: setup
	@for f in $(FLOWS); do $(BIN)/flowengine testgen $$f -o tests/generated/test_$$(basename $$f .yaml).py || exit 1; done

lint: setup
	$(BIN)/ruff check flowengine tests bench
	$(BIN)/ruff format --check flowengine tests bench
	$(BIN)/mypy

# Everything CI runs: lint, types, the whole test suite.
test: lint
	$(BIN)/pytest

test-quick: setup
	$(BIN)/pytest -m "not slow" -x -q

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
