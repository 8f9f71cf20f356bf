# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# `make run` and `make serve` install what the panel runs on (requirements.txt); `make test` and `make bench` add
# the tests and their tools (requirements-test.txt). Each stamp is named by the hash of the files it installed.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-run-$(shell cat requirements.txt | sha1sum | cut -c1-12)
TEST_STAMP := $(VENV)/.installed-test-$(shell cat requirements.txt requirements-test.txt | sha1sum | cut -c1-12)

.PHONY: run serve test bench venv test-venv clean-venv system-deps node-deps

$(STAMP): requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-run-* && touch $(STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	rm -f $(VENV)/.installed-test-* && touch $(TEST_STAMP)

venv: $(STAMP)

test-venv: $(TEST_STAMP)

run: $(STAMP)
	$(PY) -m panel.launcher

# Production: the same broker check, migration and first admin once, then gunicorn (gunicorn.conf.py) in its place.
serve: $(STAMP)
	$(PY) -m panel.launcher serve

# The suite needs a real redis-server and Debian's chromium (page tests); install them when missing.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	test -x /usr/bin/chromium || missing="$$missing chromium chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# The page tests inject axe-core (package.json, exact version; package-lock.json) into every page: npm ci installs it.
NODE_STAMP := node_modules/.installed-$(shell sha1sum package-lock.json | cut -c1-12)

$(NODE_STAMP): package.json package-lock.json
	command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm)
	npm ci --no-audit --no-fund
	rm -f node_modules/.installed-* && touch $(NODE_STAMP)

node-deps: $(NODE_STAMP)

# The house style first (ruff.toml): a finding fails `make test` before the suite starts. make exits 2 whatever
# failed, so pytest's "no tests collected" (its exit 5) is named here: a failure, not a pass.
test: $(TEST_STAMP) system-deps $(NODE_STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest; code=$$?; \
	if [ $$code -eq 5 ]; then echo "pytest collected no tests: that is a failure here, not a pass" >&2; fi; \
	exit $$code

# The benchmarks reuse the test helpers (tests.helpers): they need the test packages too.
bench: $(TEST_STAMP)
	$(PY) bench/run_all.py

clean-venv:
	rm -rf $(VENV)
