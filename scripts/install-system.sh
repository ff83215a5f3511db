#!/usr/bin/env bash
# Installs the Debian packages the platform and its tests need, when missing and when root.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need+=(postgresql)
if [ "${WITH_BROWSER:-0}" = 1 ]; then  # `make test`: the dashboard's browser, and Kill Bill (Maven, Java)
  command -v chromium >/dev/null || need+=(chromium)
  command -v mvn >/dev/null || need+=(maven)
  command -v java >/dev/null || need+=(default-jre-headless)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "Please install: ${need[*]} (e.g. sudo apt-get install ${need[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's package starts a cluster of its own; the platform runs its own clusters instead.
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  for conf in /etc/postgresql/*/main; do pg_ctlcluster "$(basename "$(dirname "$conf")")" main stop || true; done
fi
