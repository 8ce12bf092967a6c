# The two promises: `make run` starts the whole product on embedded defaults; `make test` runs
# the whole suite. Both install what they need first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/inbox
PYTEST_ARGS ?=

.PHONY: run test test-pg test-sqlite test-faults lint services fault-tools redis chromium ffmpeg ffmpeg-optional bench migrate \
	seed clean venv gettext compilemessages messages

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

# --- translations (docs/i18n.md) ---------------------------------------------------------------
# The .po catalogs under locale/ are committed; the .mo files are built from them here (not committed).
gettext:
	@bash scripts/ensure-gettext.sh

compilemessages: $(STAMP) gettext
	DJANGO_SETTINGS_MODULE=config.settings.local $(PY) manage.py compilemessages --ignore '.venv' --ignore 'staticfiles' -v 0

# After marking new strings: extract them into the catalogs, translate the empty msgstr entries, check.
messages: $(STAMP) gettext
	DJANGO_SETTINGS_MODULE=config.settings.local $(PY) manage.py translations
	@echo "now translate the new (empty) msgstr entries in locale/*/LC_MESSAGES/*.po, then: make compilemessages"

# --- make run ---------------------------------------------------------------------------------
# Every entry point defaults to production settings (config/env.py); the laptop run names local ones,
# unless the environment (or .env) names others.
run migrate seed: export DJANGO_SETTINGS_MODULE ?= config.settings.local
# Webhook deliveries in a queue of their own, for the Procfile's webhooks worker, which runs below the live inbox's
# CPU priority (WEBHOOK_WORKER_NICE, config/priority.py; docs/api.md). Every process must see the same value.
run: export WEBHOOK_QUEUE ?= inbox.webhooks
# History syncs, catch-ups and replays (the per-connection journal processor) in a queue of their own too, for the
# Procfile's journal worker, below the live inbox (JOURNAL_WORKER_NICE; docs/runner.md). Same on every process.
run: export JOURNAL_QUEUE ?= inbox.journal

redis:
	@bash scripts/ensure-redis.sh

# ffmpeg makes video posters and voice notes (inbox/transcode.py). The product runs without it (no posters,
# audio sent unconverted: logged), so `make run` goes on if it cannot be installed; `make test` needs it.
ffmpeg:
	@bash scripts/ensure-ffmpeg.sh

ffmpeg-optional:
	@bash scripts/ensure-ffmpeg.sh || echo "  (going on without ffmpeg: videos show without a poster)" >&2

migrate: $(STAMP) compilemessages
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0

seed: migrate
	$(PY) manage.py seed_demo

run: $(STAMP) redis ffmpeg-optional seed
	@echo ""
	@echo "  Inbox:        http://127.0.0.1:8000"
	@echo "  Django admin: http://127.0.0.1:8000/admin/"
	@echo "  Logins (password demo-pass-123): acme-admin, acme-agent, globex-admin; admin for Django admin"
	@echo "  Ctrl+C stops web, worker, journal, webhooks, beat, runner and watchdog."
	@echo ""
	$(VENV)/bin/honcho start -f Procfile

# --- make test --------------------------------------------------------------------------------
services:
	@bash scripts/ensure-services.sh

chromium:
	@bash scripts/ensure-chromium.sh

fault-tools:
	@bash scripts/ensure-fault-tools.sh

# Budget: `make test` stays under 15 minutes, so the fault suite (marker `faults`: the kit, the fault
# scenarios, the liveness tests of frozen and killed processes) runs in its own target,
# test-faults (docs/faults.md).
test: $(STAMP) services chromium ffmpeg fault-tools compilemessages test-pg test-sqlite lint

test-pg:
	DATABASE_URL=$(TEST_DATABASE_URL) $(VENV)/bin/pytest -m "not faults" $(PYTEST_ARGS)

test-sqlite:
	@mkdir -p var
	DATABASE_URL=sqlite:///$(CURDIR)/var/smoke.sqlite3 $(VENV)/bin/pytest -m smoke -q $(PYTEST_ARGS)

# The whole fault suite, long outages included: own Redis / PostgreSQL servers and TCP proxies
# (tests/faults, docs/faults.md).
test-faults: $(STAMP) services fault-tools
	DATABASE_URL=$(TEST_DATABASE_URL) $(VENV)/bin/pytest -m faults $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Benchmarks (not part of make test): each prints one JSON line and saves bench/results/<name>.json.
# Each builds and drops a PostgreSQL database of its own; run them on a quiet machine.
BENCHES := ingest inbox live runner channel_layer snapshot media media_s3 webhooks webhook_cpu sweep
bench: $(addprefix bench-,$(BENCHES))

bench-%: $(STAMP) services
	$(PY) bench/$*.py

clean:
	rm -rf $(VENV) staticfiles var db.sqlite3* whatsmeow.sqlite3*
