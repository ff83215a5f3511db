# The two commands: `make run` (the platform on embedded defaults) and `make test`.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# 1: Debian's Chromium too, for the dashboard's browser tests (`make test` sets it)
WITH_BROWSER ?= 0

.PHONY: run test system traefik k8s supabase minio killbill domains bench odoo odoo-start

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

# MinIO, the S3 server of the backup tests (AGPL-3: a test dependency only, never shipped), from the Go proxy
minio:
	testbed/minio/build.sh >/dev/null

# Kill Bill 0.22.26 (war) and jetty-runner from Maven Central, through ~/.m2, into the cache, once
killbill:
	testbed/killbill/fetch.sh >/dev/null

# CoreDNS and Pebble, the DNS and ACME test servers of custom domains, from the Go proxy, once
domains:
	testbed/domains/build.sh >/dev/null

# Odoo 18.0 from ODOOSAAS_ODOO_SOURCE (default ../shared/vendor/odoo-18.0.tar.xz) into the cache, once.
# `odoo-start` begins it in the background (it takes a minute), `odoo` waits for it (a lock) and
# fails with one line when there is no source, unless ODOOSAAS_LOCAL_FALLBACK_APP is set.
odoo-start:
	@mkdir -p $${ODOOSAAS_CACHE:-$$HOME/.cache/odoosaas}
	@scripts/install-odoo.sh >$${ODOOSAAS_CACHE:-$$HOME/.cache/odoosaas}/odoo-install.log 2>&1 &

odoo:
	@scripts/install-odoo.sh

run: odoo-start $(STAMP) system traefik odoo
	$(VENV)/bin/odoosaas serve

test: WITH_BROWSER = 1
test: odoo-start $(STAMP) system traefik k8s supabase minio killbill domains odoo
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: odoo-start $(STAMP) system traefik k8s minio killbill odoo
	$(VENV)/bin/python bench/provision.py
	$(VENV)/bin/python bench/provision.py odoo
	$(VENV)/bin/python bench/odoo_users.py
	$(VENV)/bin/python bench/k8s.py
	$(VENV)/bin/python bench/worker_idle.py
	$(VENV)/bin/python bench/scale.py
	$(VENV)/bin/python bench/login_memory.py
	$(VENV)/bin/python bench/migrate.py
	$(VENV)/bin/python bench/billing.py
	$(VENV)/bin/python bench/backup.py 1000 folder
	$(VENV)/bin/python bench/backup.py 1000 s3
