# The README's commands. `make run` and `make test` create .venv when it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run quality bench-search bench-ratios docs test test-heavy reliability lint format clean chromium postgresql

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP) chromium
	$(PY) -m study.launch --space penalty_grid

# Does the built-in benchmark show the trade-off? 3 seeds of the raw reference, a B sweep and the
# lambda ablation, with the acceptance checks. Rows are kept in docs/results/records/ (a rerun
# reuses them) and the tables are written to docs/results/.
quality: $(STAMP)
	$(PY) -m study.bench quality --seeds 3 --records docs/results/records/quality.jsonl --markdown docs/results/quality.md

# Does the search find the grid's front with a third of its trials? penalty_grid once, then
# pareto_search under 3 search seeds.
bench-search: $(STAMP)
	$(PY) -m study.bench search --search-seeds 3 --records docs/results/records/search.jsonl --markdown docs/results/search.md

# The platform's overhead, the concurrency speed-up, the saving of shared stages, per-stage seconds.
bench-ratios: $(STAMP) chromium
	$(PY) -m study.bench ratios --markdown docs/results/ratios.md

# The docs' generated pages and pictures, remade from the records (seconds: the benches reuse
# their recorded rows) and from the main study on disk (`make run` first).
docs: $(STAMP) chromium
	$(PY) -m study.bench quality --seeds 3 --records docs/results/records/quality.jsonl --markdown docs/results/quality.md
	$(PY) -m study.bench search --search-seeds 3 --records docs/results/records/search.jsonl --markdown docs/results/search.md
	$(PY) -m study.docs --experiment penalty_grid

# The report's PNGs (kaleido) and the browser test need Debian's chromium.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (for the report's PNGs and the browser test)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: $(STAMP) chromium
	$(PY) -m pytest -q --durations=15 -m "not heavy"

# The load test (SQLite and PostgreSQL), a study on PostgreSQL, and the authenticated two-host
# cluster: a few minutes more, so apart from `make test`; CI runs both.
test-heavy: $(STAMP) postgresql
	$(PY) -m pytest -q --durations=10 -m heavy

# The figures of the fault, cluster and load tests (all of them, the heavy ones too: about
# 12 minutes on 2 cores), written to docs/results/reliability.md under the date, commit and machine.
reliability: $(STAMP) chromium postgresql
	RELIABILITY_MARKDOWN=docs/results/reliability.md $(PY) -m pytest -q tests/test_faults.py tests/test_cluster.py tests/test_load.py

# Debian's PostgreSQL server (the heavy tests start their own in a temporary folder).
postgresql:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql (for the load and PostgreSQL tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

# Lint and types: ruff, and mypy on the whole tree (configured in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
