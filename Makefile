# The two commands a newcomer needs: `make run` and `make test`. Both set everything up
# on first use (Python 3.10 venv from the lock file, Debian's redis-server, the Rasa
# model) and are quick no-ops afterwards.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt 2>/dev/null | cut -c1-12)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: run test test-fast lint format setup system-deps model bench screenshots clean

run: model
	@$(PY) -m bot.run

test: model
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: model
	$(PY) bench/kb_match.py
	$(PY) bench/encoder.py
	$(PY) bench/understanding.py
	$(PY) bench/guide_answers.py
	$(PY) bench/stack_latency.py
	$(PY) bench/throughput.py
	$(PY) bench/handoff_scale.py
	$(PY) bench/handoff_scale.py --capacity 200,400,800
	$(PY) bench/two_nodes.py
	$(PY) bench/flood.py --write

# Refresh the README's screenshots from the browser tests.
screenshots: model
	SAVE_SCREENSHOTS=1 $(PY) -m pytest -q tests/e2e/test_console_browser.py tests/e2e/test_widget.py tests/e2e/test_editor.py tests/e2e/test_kpis.py

# The widget's npm packages (socket.io-client), exactly as locked; served by Rasa's webchat
# channel, so nothing is downloaded at run time.
WIDGET_STAMP := widget/node_modules/.installed-$(shell sha1sum widget/package-lock.json 2>/dev/null | cut -c1-12)

# The console's npm packages (Chart.js for the team lead's dashboard), the same way.
CONSOLE_STAMP := handoff/console/node_modules/.installed-$(shell sha1sum handoff/console/package-lock.json 2>/dev/null | cut -c1-12)

setup: $(STAMP) system-deps $(WIDGET_STAMP) $(CONSOLE_STAMP)

$(WIDGET_STAMP): widget/package-lock.json | system-deps
	cd widget && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CONSOLE_STAMP): handoff/console/package-lock.json | system-deps
	cd handoff/console && npm ci --no-audit --no-fund --loglevel=error
	touch $@


# Find Python 3.10 (pyenv's version named in .python-version first), build the venv and
# install exactly the locked versions; `pip check` catches a broken set before Rasa does.
$(STAMP): requirements.txt .python-version
	@set -e; \
	if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then \
	  want=$$(cat .python-version); found=""; \
	  for candidate in \
	      "$$(pyenv root 2>/dev/null)/versions/$$want/bin/python" \
	      "$$HOME/.pyenv/versions/$$want/bin/python" \
	      $$HOME/.pyenv/versions/3.10*/bin/python \
	      "$$(command -v python3.10 || true)" "$$(command -v python3 || true)"; do \
	    if [ -x "$$candidate" ] && "$$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then \
	      found="$$candidate"; break; fi; \
	  done; \
	  if [ -z "$$found" ]; then \
	    echo "error: Python 3.10 is required (Rasa 3.6 does not run on 3.11+) and none was found."; \
	    echo "       Install it with 'pyenv install $$want' or your system's python3.10 package, then re-run."; \
	    exit 1; fi; \
	  echo "creating $(VENV) with $$found"; \
	  rm -rf $(VENV); "$$found" -m venv $(VENV); \
	fi; \
	echo "installing locked requirements into $(VENV) (first time: a few minutes) ..."; \
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip==24.0"; \
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt; \
	$(PY) -m pip check; \
	rm -f $(VENV)/.installed-*; touch $@

# Debian packages: redis-server for the stack, curl for the printed example (and its test),
# chromium for the browser tests (driven by Playwright, which downloads no browser of its own),
# npm for the widget's locked front-end packages, haproxy for the two-replica tests.
SYSTEM_PACKAGES := redis-server:redis-server curl:curl chromium:chromium npm:npm haproxy:haproxy
system-deps:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
	  command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing ..."; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

model: setup
	@$(PY) -m bot.train

clean:
	rm -rf models var/generated .pytest_cache .ruff_cache
