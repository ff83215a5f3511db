# The two commands: `make run` (the platform on embedded defaults) and `make test`.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# 1: Debian's Chromium too, for the dashboard's browser tests (`make test` sets it)
WITH_BROWSER ?= 0

.PHONY: run test system traefik k8s supabase bench

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

system:
	WITH_BROWSER=$(WITH_BROWSER) scripts/install-system.sh

traefik: $(STAMP)
	PYTHON=$(VENV)/bin/python testbed/traefik/build.sh >/dev/null

k8s:
	testbed/k8s/build.sh

# Supabase Auth (GoTrue) from ../shared/vendor/ (SUPABASE_AUTH_SRC overrides the tarball)
supabase:
	testbed/supabase/build.sh

run: $(STAMP) system traefik
	ODOOSAAS_LOCAL_FALLBACK_APP=$${ODOOSAAS_LOCAL_FALLBACK_APP-sample} $(VENV)/bin/odoosaas serve

test: WITH_BROWSER = 1
test: $(STAMP) system traefik k8s supabase
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) system traefik k8s
	$(VENV)/bin/python bench/provision.py
	$(VENV)/bin/python bench/k8s.py
