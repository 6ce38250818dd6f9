# The two commands a newcomer needs: `make run` and `make test`.
# Everything is installed into .venv by this file; nothing by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-requirements
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: wrk run test lint bench bench-webhooks bench-fanout install migrate demo schema clean chromium screenshots

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Re-install only when requirements.txt changes.
$(STAMP): requirements.txt | $(PY)
	$(PIP) install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py load_demo

run: demo
	$(PY) scripts/run_all.py --host $(HOST) --port $(PORT)

# Debian tools the tests and the bench drive, installed here when missing (so `make test` works on a fresh machine):
# $(call apt_tool,NAME) installs package NAME, whose command has the same name.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends
apt_tool = command -v $(1) >/dev/null 2>&1 || $(APT_INSTALL) $(1) || { $(SUDO) apt-get update && $(APT_INSTALL) $(1); }

# The browser tests drive Debian's chromium through playwright (never `playwright install`).
chromium:
	@$(call apt_tool,chromium)

# `make bench` drives its throughput scenarios with Debian's wrk (SPEC §15), which a test runs too; pgbench comes
# with postgresql-client.
wrk:
	@$(call apt_tool,wrk)

test: install chromium wrk
	$(PY) -m pytest $(PYTEST_ARGS)

# docs/CONSOLE.md's screenshots (docs/img), made by a browser test on its own data (on SQLite, like `make test`).
screenshots: install chromium
	env -u DATABASE_URL -u CACHE_URL -u CELERY_BROKER_URL DOCS_SCREENSHOTS=1 \
		$(PY) -m pytest tests/console/test_browser_docs_screenshots.py

# ruff, then the import contracts of pyproject.toml ([tool.importlinter]: which app and module may import which).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# Receipts under load on a scratch PostgreSQL database, driven by wrk (docs/PERFORMANCE.md); py-spy for `--profile`,
# granian for `--server granian`.
bench: install wrk
	$(PIP) install --quiet -r bench/requirements.txt
	$(PY) bench/run.py $(BENCH_ARGS)

# Webhooks under load (docs/PERFORMANCE.md, "Webhooks (issue 13)"): gunicorn, a real Celery worker, a receiver.
bench-webhooks: install
	$(PY) bench/webhooks_bench.py $(BENCH_ARGS)

schema: install
	$(PY) manage.py spectacular --file openapi.yml

clean:
	rm -rf $(VENV) var db.sqlite3*

# Event delivery at scale (docs/PERFORMANCE.md, "Event delivery at scale (issue 17)"): 10,000 devices waiting on
# long-poll, then on streams, 100 sends/s among them; then 300 slow clients. Several minutes: not part of `make bench`.
bench-fanout: install
	$(PY) bench/many_waiters.py $(BENCH_ARGS)
