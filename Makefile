# Two commands matter: `make run` (install, migrate, start web, worker, agents, beat and relay on the embedded
# default) and `make test` (install, run the whole test suite on PostgreSQL and Redis).

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PORT ?= 8000
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run test install install-dev lint format schema bench echo-agent

$(VENV)/.installed-run: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-run requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed-run
install-dev: $(VENV)/.installed-dev

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py reset_metrics --verbosity 0
	@echo ""
	@echo "  Integrations API  http://127.0.0.1:$(PORT)/"
	@echo "  API docs          http://127.0.0.1:$(PORT)/api/docs/"
	@echo "  OpenAPI schema    http://127.0.0.1:$(PORT)/api/schema/"
	@echo "  Admin console     http://127.0.0.1:$(PORT)/admin/"
	@echo "  Health            http://127.0.0.1:$(PORT)/health"
	@echo "  Metrics           http://127.0.0.1:$(PORT)/metrics"
	@echo "  (admin login: $(PY) manage.py createsuperuser; API token: $(PY) manage.py create_admin_token --name me)"
	@echo ""
	$(VENV)/bin/honcho start --procfile Procfile --port $(PORT)

test: install-dev
	$(PY) -m pytest

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

schema: install-dev
	$(PY) manage.py spectacular --file docs/openapi.yaml --validate --fail-on-warn

echo-agent: install
	$(PY) manage.py run_echo_agent --port 8001

# Every benchmark with its issue's default size (about 10 minutes on 2 cores; not part of the
# tests). Each prints its figures; docs/performance.md keeps the latest ones.
bench: install-dev
	$(PY) bench/scheduler.py
	$(PY) bench/webhooks.py
	$(PY) bench/plugins.py
	$(PY) bench/bundles.py
	$(PY) bench/approvals.py
	$(PY) bench/retention.py
